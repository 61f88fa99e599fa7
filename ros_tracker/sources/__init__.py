"""Frame sources (no ROS): synthetic scene, video file, image folder, camera."""

from __future__ import annotations

from ros_tracker.sources.base import Box, Frame, FrameSource, SourceError
from ros_tracker.sources.camera import CameraSource
from ros_tracker.sources.factory import open_source
from ros_tracker.sources.files import ImageFolderSource, VideoFileSource
from ros_tracker.sources.synthetic import SyntheticScene, TargetPose

__all__ = [
    "Box",
    "CameraSource",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "SourceError",
    "SyntheticScene",
    "TargetPose",
    "VideoFileSource",
    "open_source",
]
