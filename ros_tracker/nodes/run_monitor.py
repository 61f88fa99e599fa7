"""A node that watches a tracking pipeline: pairs every processed frame with its image,
detection and ground truth, records an annotated video, and scores the run.

Used by ``ros-tracker run``; it only subscribes, so it works beside any tracker node.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, OrderedDict, Tuple

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros_tracker_interfaces.msg import TrackerStatus
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D

from ros_tracker.nodes.image_conversion import image_msg_to_bgr
from ros_tracker.visualization import draw_tracking

Box = Tuple[float, float, float, float]
STATE_NAMES = {TrackerStatus.IDLE: "IDLE", TrackerStatus.TRACKING: "TRACKING", 2: "LOST"}
# Frames written once this many later statuses arrived, so their detection is surely in.
WRITE_DELAY = 3
IMAGES_KEPT = 240


def box_from_detection(msg: Detection2D) -> Box:
    w, h = float(msg.bbox.size_x), float(msg.bbox.size_y)
    return (
        float(msg.bbox.center.position.x) - w / 2.0,
        float(msg.bbox.center.position.y) - h / 2.0,
        w,
        h,
    )


def stamp_key(header: Any) -> Tuple[int, int]:
    return (int(header.stamp.sec), int(header.stamp.nanosec))


@dataclass
class ProcessedFrame:
    """One frame the tracker processed, with what it said and the ground truth."""

    stamp: Tuple[int, int]
    state: int
    score: float
    box: Optional[Box]  # published detection (None while LOST)
    truth: Optional[Box]


class RunMonitor(Node):
    """Subscribes to the source's image and ground truth and the tracker's outputs."""

    def __init__(
        self,
        tracker_name: str = "tracker",
        source_name: str = "video_source",
        record_path: Optional[str] = None,
        record_fps: float = 30.0,
    ) -> None:
        super().__init__("ros_tracker_run")
        self._lock = threading.Lock()
        self._images: OrderedDict[Tuple[int, int], Image] = collections.OrderedDict()
        self._truth: Dict[Tuple[int, int], Box] = {}
        self._detections: Dict[Tuple[int, int], Box] = {}
        self._pending: Deque[ProcessedFrame] = collections.deque()
        self.frames: List[ProcessedFrame] = []
        self.latest_status: Optional[TrackerStatus] = None
        self.first_image: Optional[Image] = None
        self._record_path = record_path
        self._record_fps = record_fps
        self._writer: Optional[cv2.VideoWriter] = None
        self.frames_written = 0
        best_effort = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT
        )
        self.create_subscription(Image, "image", self._on_image, best_effort)
        self.create_subscription(Detection2D, f"{source_name}/ground_truth", self._on_truth, 50)
        self.create_subscription(Detection2D, f"{tracker_name}/detection", self._on_detection, 50)
        self.create_subscription(TrackerStatus, f"{tracker_name}/status", self._on_status, 50)

    def _on_image(self, msg: Image) -> None:
        with self._lock:
            if self.first_image is None:
                self.first_image = msg
            self._images[stamp_key(msg.header)] = msg
            while len(self._images) > IMAGES_KEPT:
                self._images.popitem(last=False)

    def _on_truth(self, msg: Detection2D) -> None:
        with self._lock:
            self._truth[stamp_key(msg.header)] = box_from_detection(msg)

    def truth_for(self, header: Any) -> Optional[Box]:
        with self._lock:
            return self._truth.get(stamp_key(header))

    def _on_detection(self, msg: Detection2D) -> None:
        with self._lock:
            self._detections[stamp_key(msg.header)] = box_from_detection(msg)

    def _on_status(self, msg: TrackerStatus) -> None:
        self.latest_status = msg
        if msg.state == TrackerStatus.IDLE:
            return
        with self._lock:
            key = stamp_key(msg.header)
            self._pending.append(
                ProcessedFrame(key, int(msg.state), float(msg.score), None, self._truth.get(key))
            )
            ready = []
            while len(self._pending) > WRITE_DELAY:
                ready.append(self._pending.popleft())
        for frame in ready:
            self._finish(frame)

    def flush(self) -> None:
        """Finish every frame still waiting (call once the pipeline has stopped)."""
        with self._lock:
            ready, self._pending = list(self._pending), collections.deque()
        for frame in ready:
            self._finish(frame)
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def _finish(self, frame: ProcessedFrame) -> None:
        with self._lock:
            frame.box = self._detections.pop(frame.stamp, None)
            if frame.truth is None:
                frame.truth = self._truth.get(frame.stamp)
            image_msg = self._images.get(frame.stamp)
        self.frames.append(frame)
        if self._record_path and image_msg is not None:
            self._record(frame, image_msg)

    def _record(self, frame: ProcessedFrame, image_msg: Image) -> None:
        image = image_msg_to_bgr(image_msg)
        fps = float(self.latest_status.fps) if self.latest_status is not None else 0.0
        drawn = draw_tracking(
            image,
            frame.box,
            frame.score,
            STATE_NAMES.get(frame.state, "?"),
            fps,
            ground_truth=frame.truth,
        )
        if self._writer is None:
            height, width = drawn.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(
                self._record_path, fourcc, self._record_fps, (width, height)
            )
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot write video {self._record_path}")
        self._writer.write(drawn)
        self.frames_written += 1

    def predictions_and_truth(self) -> Tuple[np.ndarray, np.ndarray]:
        """(N, 4) predicted boxes (zero boxes where none was published) and ground truth
        (NaN where the source had none), over the processed frames in order."""
        predicted = np.array(
            [f.box if f.box is not None else (0.0, 0.0, 0.0, 0.0) for f in self.frames],
            dtype=np.float64,
        ).reshape(-1, 4)
        truth = np.array(
            [f.truth if f.truth is not None else (np.nan,) * 4 for f in self.frames],
            dtype=np.float64,
        ).reshape(-1, 4)
        return predicted, truth
