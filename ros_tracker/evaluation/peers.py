"""OpenCV's classic trackers (CSRT, KCF, MIL) behind the runner's initialize/track protocol.

They are what a user would pick instead of a learned tracker, so they run through the same
runner, on the same frames, with the same timing as the zoo models. They need the contrib
build of OpenCV (``opencv-contrib-python-headless``).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

Box = Tuple[float, float, float, float]

PEER_NAMES = ("csrt", "kcf", "mil")


def _factories() -> Dict[str, Callable[[], object]]:
    import cv2

    def find(name: str) -> Callable[[], object]:
        for owner in (cv2, getattr(cv2, "legacy", None)):
            kind = getattr(owner, name, None) if owner is not None else None
            if kind is not None and hasattr(kind, "create"):
                return kind.create
        raise RuntimeError(
            f"OpenCV {cv2.__version__} has no {name}: install opencv-contrib-python-headless"
        )

    return {
        "csrt": lambda: find("TrackerCSRT")(),
        "kcf": lambda: find("TrackerKCF")(),
        "mil": lambda: find("TrackerMIL")(),
    }


def is_peer(name: str) -> bool:
    return name.strip().lower() in PEER_NAMES


def _integer_rect(box: Sequence[float], width: int, height: int) -> Tuple[int, int, int, int]:
    """The box as an integer rectangle of at least 2x2 pixels inside the image."""
    x, y, w, h = (float(v) for v in box)
    x0 = min(max(int(math.floor(x)), 0), width - 2)
    y0 = min(max(int(math.floor(y)), 0), height - 2)
    x1 = min(max(int(math.ceil(x + w)), x0 + 2), width)
    y1 = min(max(int(math.ceil(y + h)), y0 + 2), height)
    return (x0, y0, x1 - x0, y1 - y0)


class OpenCVTracker:
    """An OpenCV tracker with ``initialize(image, box)`` and ``track(image) -> (box, score)``.

    OpenCV reports only success or failure: the score is 1 or 0, and on failure the last box
    is kept (benchmarks expect a box for every frame).
    """

    def __init__(self, name: str, factory: Optional[Callable[[], object]] = None) -> None:
        key = name.strip().lower()
        if factory is None:
            factories = _factories()
            if key not in factories:
                raise ValueError(f"unknown OpenCV tracker {name!r} (choose from {PEER_NAMES})")
            factory = factories[key]
        self.name = key
        self._factory = factory
        self._tracker: Optional[object] = None
        self._box: Optional[Box] = None

    def initialize(self, image: np.ndarray, box: Sequence[float]) -> None:
        height, width = image.shape[:2]
        rect = _integer_rect(box, width, height)
        self._tracker = self._factory()  # a fresh instance: OpenCV trackers do not re-init
        self._tracker.init(image, rect)  # type: ignore[attr-defined]
        x, y, w, h = (float(v) for v in box)
        self._box = (x, y, w, h)

    def track(self, image: np.ndarray) -> Tuple[Box, float]:
        if self._tracker is None or self._box is None:
            raise RuntimeError("track() called before initialize()")
        ok, rect = self._tracker.update(image)  # type: ignore[attr-defined]
        if ok and rect[2] > 0 and rect[3] > 0:
            self._box = (float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3]))
            return self._box, 1.0
        return self._box, 0.0
