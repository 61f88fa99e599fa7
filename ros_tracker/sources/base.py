"""The frame source interface shared by files, cameras and the synthetic scene.

A source yields ``Frame(image, box)`` tuples: ``image`` is an (H, W, 3) uint8 BGR array and
``box`` the ground-truth target box ``(x, y, w, h)`` in pixels (x, y: top-left corner, pixel
``i`` covering ``[i, i + 1)``), or None where the source has no ground truth or the target is
out of view. Iterating again restarts from the first frame where the source can (files, the
synthetic scene); a camera simply continues.
"""

from __future__ import annotations

import abc
from typing import Iterator, NamedTuple, Optional, Tuple

import cv2
import numpy as np

Box = Tuple[float, float, float, float]


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names the file, folder or device."""


class Frame(NamedTuple):
    image: np.ndarray
    box: Optional[Box]


class FrameSource(abc.ABC):
    """Iterable of frames with a known size and nominal rate; close() releases devices/files."""

    @property
    @abc.abstractmethod
    def fps(self) -> float:
        """Nominal frames per second (what a publisher should pace to)."""

    @property
    @abc.abstractmethod
    def size(self) -> Tuple[int, int]:
        """(width, height) of every frame in pixels."""

    @property
    def num_frames(self) -> Optional[int]:
        """Frames per pass, or None when unknown or endless (cameras)."""
        return None

    @property
    def description(self) -> str:
        """One line for logs."""
        width, height = self.size
        return f"{type(self).__name__} {width}x{height} at {self.fps:g} fps"

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Frames from the start (or, for a camera, from now)."""

    def close(self) -> None:  # noqa: B027 - optional hook, sources without resources keep it
        """Release files or devices; the default has nothing to release."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def as_bgr(image: np.ndarray) -> np.ndarray:
    """An 8-bit image from cv2 (grey, BGR or BGRA) as 3-channel BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image
