"""Frame sources reading a video file or a folder of images (no ground truth: box is None)."""

from __future__ import annotations

import math
import os
import re
from typing import Iterator, List, Optional, Tuple

import cv2

from ros_tracker.sources.base import Frame, FrameSource, SourceError, as_bgr

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_FPS = 30.0


def _natural_key(name: str) -> List[object]:
    """Sort key putting 'img2.png' before 'img10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _valid_fps(value: float) -> bool:
    return math.isfinite(value) and 0.0 < value < 1000.0


class VideoFileSource(FrameSource):
    """Frames of a video file decoded by cv2.VideoCapture; each pass reopens the file."""

    def __init__(self, path: str, fps: Optional[float] = None) -> None:
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise SourceError(f"video file not found: {self.path}")
        capture = self._open()
        try:
            file_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            ok, first = capture.read()
        finally:
            capture.release()
        if not ok or first is None:
            raise SourceError(f"video file has no decodable frame: {self.path}")
        self._size = (int(first.shape[1]), int(first.shape[0]))
        if fps is not None and not fps > 0.0:
            raise SourceError(f"fps must be positive, got {fps}")
        if fps is not None:
            self._fps = float(fps)
        else:
            self._fps = file_fps if _valid_fps(file_fps) else DEFAULT_FPS
        self._num_frames = frame_count if frame_count > 0 else None
        self._capture: Optional[cv2.VideoCapture] = None

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.path)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open video file (unknown format or codec?): {self.path}")
        return capture

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> Tuple[int, int]:
        return self._size

    @property
    def num_frames(self) -> Optional[int]:
        """Frame count from the container header; some formats only estimate it."""
        return self._num_frames

    @property
    def description(self) -> str:
        return f"video {self.path} ({self._size[0]}x{self._size[1]}, {self._fps:g} fps)"

    def __iter__(self) -> Iterator[Frame]:
        self.close()
        capture = self._capture = self._open()
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            yield Frame(as_bgr(image), None)
        if self._capture is capture:
            self.close()

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource(FrameSource):
    """The image files of one folder in natural order (subfolders are not searched).

    Every image must have the size of the first one; an image that cannot be decoded raises
    SourceError when it is reached, naming the file.
    """

    def __init__(self, path: str, fps: float = DEFAULT_FPS) -> None:
        self.path = str(path)
        if not os.path.isdir(self.path):
            raise SourceError(f"image folder not found: {self.path}")
        names = [
            name
            for name in os.listdir(self.path)
            if name.lower().endswith(IMAGE_EXTENSIONS)
            and os.path.isfile(os.path.join(self.path, name))
        ]
        if not names:
            raise SourceError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {self.path}"
            )
        self.files = [os.path.join(self.path, name) for name in sorted(names, key=_natural_key)]
        if not fps > 0.0:
            raise SourceError(f"fps must be positive, got {fps}")
        self._fps = float(fps)
        first = self._read(self.files[0])
        self._size = (int(first.shape[1]), int(first.shape[0]))

    def _read(self, file: str):
        image = cv2.imread(file, cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot read image file (corrupt or unsupported): {file}")
        return as_bgr(image)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> Tuple[int, int]:
        return self._size

    @property
    def num_frames(self) -> Optional[int]:
        return len(self.files)

    @property
    def description(self) -> str:
        width, height = self._size
        return f"image folder {self.path} ({len(self.files)} images, {width}x{height})"

    def __iter__(self) -> Iterator[Frame]:
        for file in self.files:
            image = self._read(file)
            if (image.shape[1], image.shape[0]) != self._size:
                raise SourceError(
                    f"image {file} is {image.shape[1]}x{image.shape[0]}, but the folder's "
                    f"first image is {self._size[0]}x{self._size[1]}"
                )
            yield Frame(image, None)
