"""ROS 2 node ``video_source``: publishes frames of a video, an image folder, a camera or the
built-in synthetic scene on ``image`` at a set rate, stamped with the node's clock.

Where the source knows the target (the synthetic scene), the ground truth of every frame is
published on ``~/ground_truth`` as a Detection2D with the same header as the image, so
accuracy can be measured by any subscriber.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator, List, Optional

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D

from ros_tracker.nodes.image_conversion import bgr_to_image_msg
from ros_tracker.nodes.messages import detection_message
from ros_tracker.nodes.node_main import run_node
from ros_tracker.sources.base import Frame, FrameSource, SourceError
from ros_tracker.sources.factory import SPEC_HELP, open_source


class VideoSourceNode(Node):
    """Publishes one source's frames (see the module docstring)."""

    def __init__(self, node_name: str = "video_source", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        read_only = {"read_only": True}
        self.declare_parameter(
            "source", "synthetic", ParameterDescriptor(description=SPEC_HELP, **read_only)
        )
        self.declare_parameter(
            "rate",
            0.0,
            ParameterDescriptor(
                description="frames per second to publish (0: the source's own rate)",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0)],
                **read_only,
            ),
        )
        self.declare_parameter(
            "frame_id", "camera", ParameterDescriptor(description="header.frame_id", **read_only)
        )
        self.declare_parameter(
            "loop", True, ParameterDescriptor(description="restart at the end", **read_only)
        )
        self.declare_parameter(
            "encoding",
            "bgr8",
            ParameterDescriptor(description="bgr8 | rgb8 | mono8", **read_only),
        )
        self.declare_parameter(
            "image_qos",
            "sensor_data",
            ParameterDescriptor(description="sensor_data | reliable", **read_only),
        )
        for name, default in (("width", 640), ("height", 480), ("frames", 300), ("seed", 0)):
            self.declare_parameter(
                name,
                default,
                ParameterDescriptor(
                    description=f"synthetic scene {name}",
                    integer_range=[IntegerRange(from_value=0, to_value=100000, step=1)],
                    **read_only,
                ),
            )
        self.declare_parameter(
            "max_frames",
            0,
            ParameterDescriptor(description="stop after this many frames (0: never)", **read_only),
        )

        self.source = self._open_source()
        rate = float(self.get_parameter("rate").value) or self.source.fps
        reliability = (
            ReliabilityPolicy.RELIABLE
            if self.get_parameter("image_qos").value == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        )
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=reliability)
        self._image_pub = self.create_publisher(Image, "image", qos)
        self._truth_pub = self.create_publisher(Detection2D, "~/ground_truth", 10)
        self._frames: Iterator[Frame] = iter(self.source)
        self._published = 0
        self._max_frames = int(self.get_parameter("max_frames").value)
        self._frame_id = str(self.get_parameter("frame_id").value)
        self._encoding = str(self.get_parameter("encoding").value)
        self._loop = bool(self.get_parameter("loop").value)
        self.finished = False
        self._timer = self.create_timer(1.0 / rate, self._publish_next)
        self.get_logger().info(f"publishing {self.source.description} at {rate:g} Hz")

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
        if frame.box is not None:
            self._truth_pub.publish(detection_message(header, frame.box, 1.0, "ground_truth", ""))
        self._published += 1

    def destroy_node(self) -> None:
        self.source.close()
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
