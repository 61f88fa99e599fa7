"""Resolve a source spec string ("synthetic", "camera:N", a video file, an image folder)."""

from __future__ import annotations

import inspect
import os
import re
from typing import Type

from ros_tracker.sources.base import FrameSource, SourceError
from ros_tracker.sources.camera import CameraSource
from ros_tracker.sources.files import ImageFolderSource, VideoFileSource
from ros_tracker.sources.synthetic import SyntheticScene

SPEC_HELP = "'synthetic', 'camera:N', a video file or a folder of images"


def _construct(kind: Type[FrameSource], *args, **options) -> FrameSource:
    """Build ``kind`` after checking option names, so a typo names the accepted options."""
    accepted = [
        name for name in inspect.signature(kind.__init__).parameters if name not in ("self",)
    ]
    accepted = accepted[len(args) :]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise SourceError(
            f"{kind.__name__} does not accept option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    return kind(*args, **options)


def open_source(spec: str, **options) -> FrameSource:
    """Open the frame source that ``spec`` names; ``options`` go to its constructor.

    - ``"synthetic"``: SyntheticScene (options width, height, frames, seed, fps, occlusion, ...)
    - ``"camera:N"``: CameraSource for /dev/videoN (options width, height, fps)
    - an existing folder: ImageFolderSource (option fps)
    - an existing file: VideoFileSource (option fps)
    """
    spec = str(spec).strip()
    if not spec:
        raise SourceError(f"empty source spec; expected {SPEC_HELP}")
    if spec.lower() == "synthetic":
        return _construct(SyntheticScene, **options)
    if spec.lower().startswith("camera:"):
        index = spec.split(":", 1)[1].strip()
        if not re.fullmatch(r"\d+", index):
            raise SourceError(f"camera spec must be 'camera:N' with N >= 0, got {spec!r}")
        return _construct(CameraSource, int(index), **options)
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        return _construct(ImageFolderSource, path, **options)
    if os.path.isfile(path):
        return _construct(VideoFileSource, path, **options)
    raise SourceError(f"source {spec!r} is not an existing file or folder; expected {SPEC_HELP}")
