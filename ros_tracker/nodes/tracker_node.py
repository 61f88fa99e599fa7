"""ROS 2 node ``tracker``: camera images and services in, Detection2D and status out.

The node only adapts ROS to the tracker runtime (ros_tracker.runtime). Threads:

* the image callback stores the message in a FrameCache and returns;
* a worker thread takes the newest frame, runs the tracker and publishes, so latency never
  grows with a queue (frames replaced before the worker took them count as dropped);
* services and timers run in their own callback groups of a MultiThreadedExecutor, so they
  answer while inference is busy. SetTarget is validated in the service callback and handed
  to the worker, which initialises on the cached frame the box was drawn on and then catches
  up through the newer cached frames.

Nothing the node receives can stop it: malformed images are skipped, counted and reported
with a throttled warning; invalid targets get success=false with the reason.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros_tracker_interfaces.msg import TrackerStatus
from ros_tracker_interfaces.srv import SetTarget
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D

from ros_tracker.nodes import parameters
from ros_tracker.nodes.frame_cache import CachedFrame, FrameCache
from ros_tracker.nodes.image_conversion import (
    ImageConversionError,
    bgr_to_image_msg,
    compressed_msg_to_bgr,
    image_msg_to_bgr,
)
from ros_tracker.nodes.logging_bridge import forward_runtime_logs
from ros_tracker.nodes.messages import detection_message, diagnostics_message, status_message
from ros_tracker.nodes.node_main import run_node
from ros_tracker.nodes.statistics import RecentMedian, RecentRate
from ros_tracker.runtime.box_validation import validate_initial_box
from ros_tracker.runtime.target_state import TargetState, TargetStateMachine
from ros_tracker.visualization import draw_tracking

# How long a SetTarget call waits for the worker to initialise the tracker.
INIT_TIMEOUT_S = 15.0
WARN_THROTTLE_S = 2.0


class StartupError(RuntimeError):
    """A configuration the node cannot start with (bad parameter, missing or corrupt model)."""


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def format_stamp(stamp_ns: int) -> str:
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


@dataclass
class InitRequest:
    """A validated SetTarget waiting for the worker; the service thread waits on ``done``."""

    frame: CachedFrame
    image: np.ndarray
    box: Tuple[float, float, float, float]
    label: str
    target_id: str
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    ok: bool = False
    message: str = ""


class TrackerNode(Node):
    """The ``tracker`` node (see the module docstring and INTERFACE.md)."""

    def __init__(self, node_name: str = "tracker", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._log_handler = forward_runtime_logs(self.get_logger())
        self._declare_parameters()
        self._tracker = self._build_tracker()

        self._lock = threading.Lock()  # guards target state, generation and counters
        self._state = TargetStateMachine(
            lost_threshold=self._param("lost_threshold"), lost_frames=self._param("lost_frames")
        )
        self._generation = 0  # bumped by every set_target and reset
        self._target_id = ""
        self._label = ""
        self._targets_set = 0
        self._score = 0.0
        self._last_header = Header()
        self._stream_size: Optional[Tuple[int, int]] = None
        self._new_size_streak = 0
        self._pending: Optional[InitRequest] = None
        self._processed = 0
        self._malformed = 0
        self._errors = 0
        self._last_warning: Dict[str, float] = {}
        self._rate = RecentRate()
        self._latency = RecentMedian()
        self._publish_debug = bool(self._param("publish_debug_image"))
        value_range = list(self._param("value_range"))
        self._value_range = None if value_range[0] == value_range[1] else tuple(value_range)
        self._cache = FrameCache(self._param("frame_cache_size"))

        images = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        self._compressed = bool(self._param("compressed"))
        reliability = (
            ReliabilityPolicy.RELIABLE
            if self._param("image_qos") == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        )
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=reliability)
        topic, kind = (
            ("image/compressed", CompressedImage) if self._compressed else ("image", Image)
        )
        self._image_sub = self.create_subscription(
            kind, topic, self._on_image, image_qos, callback_group=images
        )
        self._detection_pub = self.create_publisher(Detection2D, "~/detection", 10)
        self._status_pub = self.create_publisher(TrackerStatus, "~/status", 10)
        self._debug_pub = self.create_publisher(Image, "~/debug_image", 2)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetTarget, "~/set_target", self._on_set_target, callback_group=services)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)
        self.create_timer(1.0, self._on_idle_timer, callback_group=timers)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=timers)
        self.add_on_set_parameters_callback(self._on_parameters)

        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="tracker-worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: model {self._tracker.model_name} on {self._tracker.backend_name}, "
            f"listening on {self._image_sub.topic_name}"
        )

    # ------------------------------------------------------------------ set-up
    def _declare_parameters(self) -> None:
        for spec in parameters.SPECS:
            self.declare_parameter(spec.name, spec.default, parameters.descriptor(spec))
        for spec in parameters.SPECS:
            reason = parameters.check_value(spec.name, self._param(spec.name))
            if reason is not None:
                raise StartupError("invalid parameter: " + reason)

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _build_tracker(self) -> Any:
        from ros_tracker.runtime.factory import build_tracker

        threads = int(self._param("threads")) or None
        try:
            return build_tracker(
                self._param("model"),
                backend=self._param("backend"),
                device=self._param("device"),
                precision=self._param("precision"),
                engine_cache_dir=os.path.expanduser(self._param("engine_cache_dir")),
                threads=threads,
                box_policy=self._param("box_policy"),
            )
        except Exception as error:  # every failure here is a configuration the user must fix
            raise StartupError(
                f"cannot load model {self._param('model')!r} "
                f"(backend {self._param('backend')}): {error}"
            ) from error

    def _on_parameters(self, changes: List[Any]) -> SetParametersResult:
        for change in changes:
            reason = parameters.check_value(change.name, change.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        with self._lock:
            for change in changes:
                if change.name == "lost_threshold":
                    self._state.lost_threshold = float(change.value)
                elif change.name == "lost_frames":
                    self._state.lost_frames = int(change.value)
                elif change.name == "publish_debug_image":
                    self._publish_debug = bool(change.value)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ input
    def _on_image(self, msg: Any) -> None:
        with self._lock:
            active = self._state.state != TargetState.IDLE
        self._cache.put(stamp_to_ns(msg.header.stamp), msg, count_drop=active)

    def _convert(self, msg: Any) -> np.ndarray:
        if self._compressed:
            return compressed_msg_to_bgr(msg, self._value_range)
        return image_msg_to_bgr(msg, self._value_range)

    def _warn(self, kind: str, text: str) -> None:
        """A warning at most every WARN_THROTTLE_S per kind of problem (rclpy throttles per
        call site, which would let one kind hide another)."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -WARN_THROTTLE_S) >= WARN_THROTTLE_S:
            self._last_warning[kind] = now
            self.get_logger().warning(text)

    # ------------------------------------------------------------------ services
    def _on_set_target(self, request: Any, response: Any) -> Any:
        response.success = False
        response.target_id = ""
        frame, reason = self._frame_for(stamp_to_ns(request.header.stamp))
        if frame is None:
            return self._refuse(response, reason)
        try:
            image = self._convert(frame.msg)
        except ImageConversionError as error:
            return self._refuse(
                response, f"image {format_stamp(frame.stamp_ns)} cannot be used: {error}"
            )
        height, width = image.shape[:2]
        size_x, size_y = float(request.bbox.size_x), float(request.bbox.size_y)
        centre_x = float(request.bbox.center.position.x)
        centre_y = float(request.bbox.center.position.y)
        box = (centre_x - size_x / 2.0, centre_y - size_y / 2.0, size_x, size_y)
        check = validate_initial_box(box, (width, height))
        if not check.ok or check.box is None:
            return self._refuse(response, check.reason)

        with self._lock:
            self._targets_set += 1
            target_id = f"target_{self._targets_set}"
        init = InitRequest(frame, image, check.box, request.label, target_id)
        with self._lock:
            if self._pending is not None:
                self._pending.cancelled = True
                self._pending.message = "superseded by a newer set_target"
                self._pending.done.set()
            self._pending = init
        self._cache.wake()
        if not init.done.wait(INIT_TIMEOUT_S):
            init.cancelled = True
            return self._refuse(
                response, f"initialisation did not finish within {INIT_TIMEOUT_S} s"
            )
        if not init.ok:
            return self._refuse(response, init.message)
        notes = " (box clipped to the image)" if check.clipped else ""
        if float(request.bbox.center.theta) != 0.0:
            notes += " (rotation ignored: tracking an axis-aligned box)"
        response.success = True
        response.target_id = target_id
        response.message = (
            f"tracking {target_id} from image {format_stamp(frame.stamp_ns)}{notes}: {init.message}"
        )
        self.get_logger().info(response.message)
        return response

    def _frame_for(self, stamp_ns: int) -> Tuple[Optional[CachedFrame], str]:
        """The cached frame a SetTarget refers to, or None and the reason."""
        latest = self._cache.latest()
        if latest is None:
            return None, (
                f"no image received yet on {self._image_sub.topic_name}: "
                "a target can only be set once images arrive"
            )
        if stamp_ns == 0:
            return latest, ""
        frame = self._cache.find(stamp_ns)
        if frame is not None:
            return frame, ""
        oldest = self._cache.oldest_stamp() or 0
        stamp = format_stamp(stamp_ns)
        if stamp_ns < oldest:
            return None, (
                f"stamp {stamp} is older than the frame cache (oldest cached image "
                f"{format_stamp(oldest)}; frame_cache_size={self._param('frame_cache_size')})"
            )
        if stamp_ns > latest.stamp_ns:
            return None, (
                f"stamp {stamp} is newer than the newest image received "
                f"({format_stamp(latest.stamp_ns)})"
            )
        return None, (
            f"no cached image has stamp {stamp} (cached: {format_stamp(oldest)} "
            f"to {format_stamp(latest.stamp_ns)}); use an image's exact stamp or 0 for the newest"
        )

    def _refuse(self, response: Any, reason: str) -> Any:
        response.success = False
        response.message = reason
        self.get_logger().warning("set_target refused: " + reason)
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._lock:
            previous = self._target_id
            self._generation += 1
            self._state.reset()
            self._target_id = ""
            self._label = ""
            if self._pending is not None:
                self._pending.cancelled = True
                self._pending.message = "cancelled by reset"
                self._pending.done.set()
                self._pending = None
        self._cache.discard_pending()
        response.success = True
        response.message = f"dropped {previous}" if previous else "no target was set"
        self.get_logger().info("reset: " + response.message)
        return response

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                init, self._pending = self._pending, None
            if init is not None:
                self._initialize(init)
                continue
            frame = self._cache.take_newest(timeout=0.1)
            if frame is None:
                continue
            with self._lock:
                idle = self._state.state == TargetState.IDLE
            if not idle:
                self._process(frame)

    def _initialize(self, init: InitRequest) -> None:
        if init.cancelled:
            return
        try:
            self._tracker.initialize(init.image, init.box)
        except Exception as error:  # a runtime failure must not stop the node
            init.message = f"tracker initialisation failed: {error}"
            init.done.set()
            return
        with self._lock:
            if init.cancelled:
                return
            self._generation += 1
            self._state.start()
            self._target_id = init.target_id
            self._label = init.label
            self._score = 1.0
            self._stream_size = (init.image.shape[1], init.image.shape[0])
            self._new_size_streak = 0
        newer = self._cache.newer_than(init.frame.seq)
        init.ok = True
        init.message = f"catching up through {len(newer)} newer cached frame(s)"
        init.done.set()
        for frame in newer:
            self._process(frame)
        if newer:
            self._cache.clear_pending_up_to(newer[-1].seq)

    def _process(self, frame: CachedFrame) -> None:
        try:
            image = self._convert(frame.msg)
        except ImageConversionError as error:
            with self._lock:
                self._malformed += 1
            self._warn(
                "malformed", f"skipped a malformed image ({self._malformed} so far): {error}"
            )
            return
        if not self._accept_size(image):
            return
        with self._lock:
            generation = self._generation
        try:
            result = self._tracker.track(image)
        except Exception as error:  # keep running; report and count
            with self._lock:
                self._errors += 1
            self._warn("tracking", f"tracking failed on one frame ({self._errors} so far): {error}")
            return
        with self._lock:
            if generation != self._generation:
                return  # reset or retargeted while this frame was in flight
            state = self._state.update(result.score)
            self._score = float(result.score)
            self._processed += 1
            self._last_header = frame.msg.header
            target_id, label = self._target_id, self._label
        self._rate.tick(time.monotonic())
        header = frame.msg.header
        if state == TargetState.TRACKING:
            self._detection_pub.publish(
                detection_message(header, result.box, result.score, target_id, label)
            )
        if frame.stamp_ns:
            now_ns = self.get_clock().now().nanoseconds
            self._latency.add((now_ns - frame.stamp_ns) / 1e6)
        self._publish_status(header, state)
        if self._publish_debug and self._debug_pub.get_subscription_count() > 0:
            fps = self._rate.rate(time.monotonic())
            drawn = draw_tracking(image, result.box, result.score, state.name, fps, label=label)
            self._debug_pub.publish(bgr_to_image_msg(drawn, header))

    def _accept_size(self, image: np.ndarray) -> bool:
        """False for a frame whose resolution differs from the stream's (see resolution params)."""
        size = (image.shape[1], image.shape[0])
        with self._lock:
            expected = self._stream_size
            if expected is None or size == expected:
                self._new_size_streak = 0
                self._stream_size = size
                return True
            self._new_size_streak += 1
            self._malformed += 1
            streak = self._new_size_streak
        needed = int(self._param("resolution_change_frames"))
        if streak < needed:
            self._warn(
                "resolution",
                f"image resolution changed from {expected[0]}x{expected[1]} to "
                f"{size[0]}x{size[1]}: frame skipped ({streak}/{needed} before adopting it)",
            )
            return False
        with self._lock:
            self._stream_size = size
            self._new_size_streak = 0
            self._generation += 1
            self._state.reset()
            dropped, self._target_id = self._target_id, ""
        self.get_logger().warning(
            f"adopted the new resolution {size[0]}x{size[1]}; target {dropped} dropped "
            "(its box belongs to the old resolution): call set_target again"
        )
        return False

    # ------------------------------------------------------------------ output
    def _status_fields(self, state: TargetState) -> dict:
        with self._lock:
            fields = {
                "state": int(state),
                "target_id": self._target_id,
                "score": self._score if state != TargetState.IDLE else 0.0,
                "frames_processed": self._processed,
            }
        fields.update(
            fps=self._rate.rate(time.monotonic()),
            latency_ms=self._latency.median(),
            frames_dropped=self._cache.dropped,
            backend=self._tracker.backend_name,
            model=self._tracker.model_name,
        )
        return fields

    def _publish_status(self, header: Header, state: TargetState) -> None:
        self._status_pub.publish(status_message(header, self._status_fields(state)))

    def _on_idle_timer(self) -> None:
        with self._lock:
            state = self._state.state
            header = self._last_header
        if state == TargetState.IDLE:
            self._publish_status(header, state)

    def _publish_diagnostics(self) -> None:
        with self._lock:
            state = self._state.state
            malformed, errors = self._malformed, self._errors
        fields = self._status_fields(state)
        level, message = DiagnosticStatus.OK, state.name.lower()
        if state == TargetState.LOST:
            level, message = DiagnosticStatus.WARN, "target lost"
        if malformed or errors:
            level = DiagnosticStatus.WARN
            message += f"; {malformed} malformed image(s), {errors} tracking error(s)"
        values = dict(fields)
        values.update(
            state=state.name,
            frames_received=self._cache.received,
            frames_malformed=malformed,
            tracking_errors=errors,
        )
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        name = f"{self.get_fully_qualified_name()}: tracker"
        self._diagnostics_pub.publish(diagnostics_message(header, name, level, message, values))

    # ------------------------------------------------------------------ shutdown
    def destroy_node(self) -> None:
        self._stop.set()
        self._cache.wake()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        self._tracker.close()
        logging.getLogger("ros_tracker").removeHandler(self._log_handler)
        super().destroy_node()


def _spin(node: TrackerNode) -> None:
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.spin()


def main(args: Optional[List[str]] = None) -> int:
    return run_node("tracker", TrackerNode, _spin, (StartupError,), args)


if __name__ == "__main__":
    sys.exit(main())
