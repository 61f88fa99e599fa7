"""ROS 2 node ``video_source``: publishes frames of a video, an image folder, a camera or the
built-in synthetic scene on ``image`` at a set rate, stamped with the node's clock, and a
``camera_info`` with the same header, as a camera driver does.

QoS: like the camera drivers (REP-2003: reliable, the system default), unless ``image_qos``
says ``sensor_data``. ``camera_info`` comes from a calibration file (``camera_info_file``, the
YAML that camera_calibration writes) or, without one, describes an ideal pinhole camera of
``horizontal_fov_deg``.

Where the source knows the target (the synthetic scene), the ground truth of every frame is
published on ``~/ground_truth`` as a Detection2D with the same header as the image, so
accuracy can be measured by any subscriber.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Iterator, List, Optional

import rclpy
import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D

from ros_tracker.nodes.image_conversion import bgr_to_image_msg
from ros_tracker.nodes.messages import detection_message
from ros_tracker.nodes.node_main import run_node
from ros_tracker.nodes.parameters import type_rule
from ros_tracker.sources.base import Frame, FrameSource, SourceError
from ros_tracker.sources.factory import SPEC_HELP, open_source

ENCODINGS = ("bgr8", "rgb8", "mono8")
IMAGE_QOS = ("reliable", "sensor_data")


def ideal_camera_info(width: int, height: int, horizontal_fov_deg: float) -> CameraInfo:
    """A distortion-free pinhole camera of the given field of view, centred."""
    focal = (width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def load_camera_info(path: str) -> CameraInfo:
    """A calibration YAML (camera_calibration / camera_info_manager layout) as CameraInfo."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        info = CameraInfo(
            width=int(data["image_width"]),
            height=int(data["image_height"]),
            distortion_model=str(data.get("distortion_model", "plumb_bob")),
        )
        info.k = [float(v) for v in data["camera_matrix"]["data"]]
        info.d = [float(v) for v in data.get("distortion_coefficients", {}).get("data", [])]
        if "rectification_matrix" in data:
            info.r = [float(v) for v in data["rectification_matrix"]["data"]]
        if "projection_matrix" in data:
            info.p = [float(v) for v in data["projection_matrix"]["data"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AssertionError) as error:
        raise SourceError(f"cannot read camera_info_file {path!r}: {error!r}") from error
    return info


class VideoSourceNode(Node):
    """Publishes one source's frames (see the module docstring)."""

    def __init__(self, node_name: str = "video_source", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.source: Optional[FrameSource] = None
        self._declare_parameters()
        encoding = str(self.get_parameter("encoding").value)
        if encoding not in ENCODINGS:
            raise SourceError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        qos_name = str(self.get_parameter("image_qos").value)
        if qos_name not in IMAGE_QOS:
            raise SourceError(f"image_qos must be one of {', '.join(IMAGE_QOS)}, got {qos_name!r}")

        self.source = self._open_source()
        rate = float(self.get_parameter("rate").value) or float(self.source.fps)
        if not (math.isfinite(rate) and rate > 0.0):
            raise SourceError(
                f"{self.source.description} reports no frame rate: set the rate parameter"
            )
        width, height = self.source.size
        calibration = str(self.get_parameter("camera_info_file").value)
        if calibration:
            self._camera_info = load_camera_info(calibration)
            if (self._camera_info.width, self._camera_info.height) != (width, height):
                raise SourceError(
                    f"camera_info_file {calibration!r} is for "
                    f"{self._camera_info.width}x{self._camera_info.height} images, the source "
                    f"gives {width}x{height}"
                )
        else:
            fov = float(self.get_parameter("horizontal_fov_deg").value)
            self._camera_info = ideal_camera_info(width, height, fov)
        reliability = (
            ReliabilityPolicy.RELIABLE if qos_name == "reliable" else ReliabilityPolicy.BEST_EFFORT
        )
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)
        self._image_pub = self.create_publisher(Image, "image", qos)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self._truth_pub = self.create_publisher(Detection2D, "~/ground_truth", 10)
        self._frames: Iterator[Frame] = iter(self.source)
        self._published = 0
        self._max_frames = int(self.get_parameter("max_frames").value)
        self._frame_id = str(self.get_parameter("frame_id").value)
        self._encoding = encoding
        self._loop = bool(self.get_parameter("loop").value)
        self.finished = False
        self._timer = self.create_timer(1.0 / rate, self._publish_next)
        self.get_logger().info(
            f"publishing {self.source.description} at {rate:g} Hz ({qos_name}) with camera_info"
        )

    def _declare_parameters(self) -> None:
        read_only = {"read_only": True}

        def declare(name: str, default: Any, description: str, **descriptor: Any) -> None:
            try:
                self.declare_parameter(
                    name,
                    default,
                    ParameterDescriptor(description=description, **read_only, **descriptor),
                )
            except InvalidParameterTypeException as error:
                raise SourceError("invalid parameter: " + type_rule(name, default)) from error
            except InvalidParameterValueException as error:
                bounds = descriptor.get("floating_point_range") or descriptor.get("integer_range")
                rule = f" in [{bounds[0].from_value:g}, {bounds[0].to_value:g}]" if bounds else ""
                raise SourceError(f"invalid parameter: {name} must be{rule} ({error})") from error

        declare("source", "synthetic", SPEC_HELP)
        declare(
            "rate",
            0.0,
            "frames per second to publish (0: the source's own rate)",
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0)],
        )
        declare("frame_id", "camera", "header.frame_id")
        declare("loop", True, "restart at the end")
        declare("encoding", "bgr8", " | ".join(ENCODINGS))
        declare("image_qos", "reliable", "reliable (camera drivers, REP-2003) | sensor_data")
        declare("camera_info_file", "", "calibration YAML; empty: an ideal pinhole camera")
        declare(
            "horizontal_fov_deg",
            60.0,
            "field of view of the ideal camera_info (no camera_info_file)",
            floating_point_range=[FloatingPointRange(from_value=1.0, to_value=179.0)],
        )
        for name, default in (("width", 640), ("height", 480), ("frames", 300), ("seed", 0)):
            declare(
                name,
                default,
                f"synthetic scene {name}",
                integer_range=[IntegerRange(from_value=0, to_value=100000, step=1)],
            )
        declare("max_frames", 0, "stop after this many frames (0: never)")

    def _open_source(self) -> FrameSource:
        spec = str(self.get_parameter("source").value)
        options = {}
        if spec.strip().lower() == "synthetic":
            options = {
                name: int(self.get_parameter(name).value)
                for name in ("width", "height", "frames", "seed")
            }
        try:
            return open_source(spec, **options)
        except SourceError as error:
            raise SourceError(f"cannot open source {spec!r}: {error}") from error

    def subscriber_count(self) -> int:
        """Subscriptions matched to the image topic (to start once everyone listens)."""
        return self._image_pub.get_subscription_count()

    @property
    def published(self) -> int:
        return self._published

    def _publish_next(self) -> None:
        if self.finished:
            return
        frame = next(self._frames, None)
        if frame is None and self._loop:
            self._frames = iter(self.source)
            frame = next(self._frames, None)
        if frame is None or (self._max_frames and self._published >= self._max_frames):
            self.finished = True
            self._timer.cancel()
            self.get_logger().info(f"source finished after {self._published} frames")
            return
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        header.frame_id = self._frame_id
        self._image_pub.publish(bgr_to_image_msg(frame.image, header, self._encoding))
        self._camera_info.header = header
        self._info_pub.publish(self._camera_info)
        if frame.box is not None:
            self._truth_pub.publish(detection_message(header, frame.box, 1.0, "ground_truth", ""))
        self._published += 1

    def destroy_node(self) -> None:
        source, self.source = getattr(self, "source", None), None
        if source is not None:
            source.close()
        super().destroy_node()


def _spin_until_finished(node: VideoSourceNode) -> None:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while rclpy.ok() and not node.finished:
        executor.spin_once(timeout_sec=0.1)


def main(args: Optional[List[str]] = None) -> int:
    return run_node("video_source", VideoSourceNode, _spin_until_finished, (SourceError,), args)


if __name__ == "__main__":
    sys.exit(main())
