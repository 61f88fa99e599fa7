"""A live camera (V4L2 on Linux) read through cv2.VideoCapture."""

from __future__ import annotations

import glob
import os
import sys
from typing import Iterator, Optional, Tuple

import cv2

from ros_tracker.sources.base import Frame, FrameSource, SourceError, as_bgr

DEFAULT_CAMERA_FPS = 30.0


def _linux_video_devices() -> str:
    devices = sorted(glob.glob("/dev/video*"))
    return ", ".join(devices) if devices else "none"


class CameraSource(FrameSource):
    """Frames from camera ``index`` (/dev/video<index>); iteration ends if the camera stops.

    ``width``, ``height`` and ``fps`` are requests to the driver; the properties report what
    the camera actually delivers.
    """

    def __init__(
        self,
        index: int,
        width: Optional[int] = None,
        height: Optional[int] = None,
        fps: Optional[float] = None,
    ) -> None:
        self.index = int(index)
        if self.index < 0:
            raise SourceError(f"camera index must be >= 0, got {index}")
        on_linux = sys.platform.startswith("linux")
        if on_linux and not os.path.exists(f"/dev/video{self.index}"):
            raise SourceError(
                f"camera {self.index}: /dev/video{self.index} does not exist "
                f"(video devices present: {_linux_video_devices()})"
            )
        api = cv2.CAP_V4L2 if on_linux else cv2.CAP_ANY
        self._capture: Optional[cv2.VideoCapture] = cv2.VideoCapture(self.index, api)
        if not self._capture.isOpened():
            self.close()
            raise SourceError(
                f"camera {self.index} could not be opened (busy, no permission, "
                "or not a capture device)"
            )
        if width is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps is not None:
            self._capture.set(cv2.CAP_PROP_FPS, float(fps))
        ok, first = self._capture.read()
        if not ok or first is None:
            self.close()
            raise SourceError(f"camera {self.index} opened but delivered no frame")
        self._first: Optional[Frame] = Frame(as_bgr(first), None)
        self._size = (int(first.shape[1]), int(first.shape[0]))
        reported = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = reported if 0.0 < reported < 1000.0 else DEFAULT_CAMERA_FPS

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> Tuple[int, int]:
        return self._size

    @property
    def description(self) -> str:
        return f"camera {self.index} ({self._size[0]}x{self._size[1]}, {self._fps:g} fps)"

    def __iter__(self) -> Iterator[Frame]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while self._capture is not None:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            yield Frame(as_bgr(image), None)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
