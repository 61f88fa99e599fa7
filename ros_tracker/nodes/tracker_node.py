"""ROS 2 node ``tracker``: camera images and services in, Detection2D and status out.

The node only adapts ROS to the tracker runtime (ros_tracker.runtime). Who does what:

* the image callback checks a message's layout (a malformed one is counted and never
  displaces a good frame), stores it in the FrameCache and returns;
* the TrackingWorker thread runs the tracker: a pending SetTarget first, otherwise the
  newest frame; it calls ``_publish_result`` with every tracked frame;
* the TargetSession holds the target, the pending SetTarget and the per-target statistics
  that the threads share, one transaction per method;
* services run in a reentrant group of a MultiThreadedExecutor, so ``~/reset`` answers, and
  cancels a waiting ``~/set_target``, while inference or an initialisation is busy; timers
  (idle status, diagnostics) have their own group.

Nothing the node receives can stop it: malformed images are skipped, counted and reported
with a throttled warning; invalid targets get success=false with the reason.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3Stamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from ros_tracker_interfaces.msg import TrackerStatus
from ros_tracker_interfaces.srv import SetTarget
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D

from ros_tracker.nodes import parameters
from ros_tracker.nodes.camera_model import CameraModel, CameraModelError
from ros_tracker.nodes.entry import WHERE
from ros_tracker.nodes.frame_cache import CachedFrame, FrameCache
from ros_tracker.nodes.image_conversion import (
    ImageConversionError,
    bgr_to_compressed_msg,
    bgr_to_image_msg,
    check_compressed_msg,
    check_image_msg,
    compressed_msg_to_bgr,
    image_msg_to_bgr,
)
from ros_tracker.nodes.logging_bridge import forward_runtime_logs
from ros_tracker.nodes.messages import detection_message, status_message
from ros_tracker.nodes.node_main import run_node
from ros_tracker.nodes.statistics import EventWindow, RecentMedian
from ros_tracker.nodes.target_session import InitRequest, Recorded, TargetSession
from ros_tracker.nodes.tracker_diagnostics import DiagnosticsSnapshot, diagnostics_array
from ros_tracker.nodes.tracking_worker import TrackingWorker
from ros_tracker.runtime.box_validation import validate_initial_box
from ros_tracker.runtime.target_state import TargetState
from ros_tracker.visualization import draw_tracking

WARN_THROTTLE_S = 2.0
DIAGNOSTICS_WINDOW_S = 5.0


class StartupError(RuntimeError):
    """A configuration the node cannot start with (bad parameter, missing or corrupt model)."""


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def format_stamp(stamp_ns: int) -> str:
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


def install_hints(message: str) -> str:
    """How to install each module that ``message`` says is missing (see entry.WHERE)."""
    missing = dict.fromkeys(re.findall(r"No module named '(\w+)", message))
    return "".join(f"; to install {name}: {WHERE[name]}" for name in missing if name in WHERE)


def inference_device(tracker: Any) -> str:
    """The device inference runs on, for diagnostics' hardware_id (cpu, cuda, ...)."""
    device = getattr(tracker.backend, "device", None)
    if device is not None and str(device):
        return str(device)
    name = str(tracker.backend_name)
    if "cpu" in name:
        return "cpu"
    if "tensorrt" in name or "cuda" in name:
        return "cuda"
    return name


class TrackerNode(Node):
    """The ``tracker`` node (see the module docstring and INTERFACE.md)."""

    def __init__(self, node_name: str = "tracker", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._worker: Optional[TrackingWorker] = None
        self._tracker: Any = None
        self._log_handler = forward_runtime_logs(self.get_logger())
        self._declare_parameters()
        self._tracker = self._build_tracker()
        self._hardware_id = inference_device(self._tracker)

        self._session = TargetSession(
            lost_threshold=self._param("lost_threshold"), lost_frames=self._param("lost_frames")
        )
        self._events = EventWindow(DIAGNOSTICS_WINDOW_S)
        self._stamp_age = RecentMedian()
        self._last_header = Header()
        self._last_warning: Dict[str, float] = {}
        self._publish_debug = bool(self._param("publish_debug_image"))
        self._set_target_timeout = float(self._param("set_target_timeout"))
        value_range = list(self._param("value_range"))
        self._value_range = None if value_range[0] == value_range[1] else tuple(value_range)
        self._cache = FrameCache(self._param("frame_cache_size"))

        self._images_group = MutuallyExclusiveCallbackGroup()
        services = ReentrantCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        self._compressed = bool(self._param("compressed"))
        self._image_topic, self._image_type = (
            ("image/compressed", CompressedImage) if self._compressed else ("image", Image)
        )
        self._image_qos_mode = str(self._param("image_qos"))
        self._image_sub: Any = None
        self._subscribe_images(self._wanted_reliability())
        self._camera: Optional[CameraModel] = None
        self._camera_info_key: Any = None
        camera_info_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT
        )
        self.create_subscription(
            CameraInfo,
            "camera_info",
            self._on_camera_info,
            camera_info_qos,
            callback_group=self._images_group,
        )
        self._detection_pub = self.create_publisher(Detection2D, "~/detection", 10)
        self._bearing_pub = self.create_publisher(Vector3Stamped, "~/bearing", 10)
        self._status_pub = self.create_publisher(TrackerStatus, "~/status", 10)
        self._debug_pub = self.create_publisher(Image, "~/debug_image", 2)
        self._debug_compressed_pub = self.create_publisher(
            CompressedImage, "~/debug_image/compressed", 2
        )
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetTarget, "~/set_target", self._on_set_target, callback_group=services)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)
        self.create_timer(1.0, self._on_idle_timer, callback_group=timers)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=timers)
        if self._image_qos_mode == "auto":
            self.create_timer(1.0, self._follow_publishers_qos, callback_group=timers)
        self.add_on_set_parameters_callback(self._on_parameters)

        self._worker = TrackingWorker(
            tracker=self._tracker,
            cache=self._cache,
            session=self._session,
            convert=self._convert,
            publish=self._publish_result,
            events=self._events,
            logger=self.get_logger(),
            warn=self._warn,
            now_ns=lambda: self.get_clock().now().nanoseconds,
            resolution_change_frames=int(self._param("resolution_change_frames")),
            context_ok=self.context.ok,
        )
        self._worker.start()
        self.get_logger().info(
            f"ready: model {self._tracker.model_name} on {self._tracker.backend_name}, "
            f"listening on {self._image_sub.topic_name} ({self._describe_image_qos()})"
        )

    # ------------------------------------------------------------------ set-up
    def _declare_parameters(self) -> None:
        for spec in parameters.SPECS:
            try:
                self.declare_parameter(spec.name, spec.default, parameters.descriptor(spec))
            except InvalidParameterTypeException as error:
                raise StartupError(
                    "invalid parameter: " + parameters.type_rule(spec.name) + self._given(spec.name)
                ) from error
            except InvalidParameterValueException as error:
                reason = parameters.check_value(spec.name, self._override(spec.name))
                raise StartupError(f"invalid parameter: {reason or error}") from error
        for spec in parameters.SPECS:
            reason = parameters.check_value(spec.name, self._param(spec.name))
            if reason is not None:
                raise StartupError("invalid parameter: " + reason)

    def _override(self, name: str) -> Any:
        """The value a parameters file or the command line gave ``name`` (None: none)."""
        override = getattr(self, "_parameter_overrides", {}).get(name)
        if override is None:
            return None
        value = override.value
        if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
            return list(value)
        return value

    def _given(self, name: str) -> str:
        """ ", got integer 1": the kind and value of the override, for error messages."""
        override = getattr(self, "_parameter_overrides", {}).get(name)
        if override is None:
            return ""
        kind = override.type_.name.lower().replace("_", " ")
        return f", got {kind} {self._override(name)!r}"

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
                f"(backend {self._param('backend')}): {error}{install_hints(str(error))}"
            ) from error

    def _on_parameters(self, changes: List[Any]) -> SetParametersResult:
        for change in changes:
            reason = parameters.check_value(change.name, change.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        for change in changes:
            if change.name == "lost_threshold":
                self._session.configure(lost_threshold=float(change.value))
            elif change.name == "lost_frames":
                self._session.configure(lost_frames=int(change.value))
            elif change.name == "publish_debug_image":
                self._publish_debug = bool(change.value)
            elif change.name == "set_target_timeout":
                self._set_target_timeout = float(change.value)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ input
    def _wanted_reliability(self) -> ReliabilityPolicy:
        """The image subscription's reliability for the ``image_qos`` parameter.

        ``auto`` subscribes reliable when every publisher of the topic offers it (Fast DDS
        repairs the lost fragments of large images only then: a best-effort reader gets a
        fraction of camera-rate 640x480 frames from another process) and best effort when
        any publisher is best effort (a reliable reader would not match it) or none is seen
        yet.
        """
        if self._image_qos_mode == "reliable":
            return ReliabilityPolicy.RELIABLE
        if self._image_qos_mode == "sensor_data":
            return ReliabilityPolicy.BEST_EFFORT
        if self._image_sub is not None:
            topic = self._image_sub.topic_name  # resolved and remapped
        else:
            topic = self.resolve_topic_name(self._image_topic)
        publishers = self.get_publishers_info_by_topic(topic)
        offered = [info.qos_profile.reliability for info in publishers]
        if offered and all(r == ReliabilityPolicy.RELIABLE for r in offered):
            return ReliabilityPolicy.RELIABLE
        return ReliabilityPolicy.BEST_EFFORT

    def _subscribe_images(self, reliability: ReliabilityPolicy) -> None:
        # A few deep: the callback only stores the message, and the worker takes the newest,
        # so depth adds no latency; it rides out short stalls of the executor on a busy CPU.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        self._image_reliability = reliability
        # image_qos auto replaces this subscription under the spinning executor when a
        # publisher of the other reliability appears, and that publisher fires rclpy's default
        # incompatible-QoS event on it at the same moment. rclpy guards taking a message from
        # a destroyed subscription but not taking an event from a destroyed event handler
        # (InvalidHandle would leave spin). Auto follows the publishers itself, so the warning
        # says nothing here: its subscription carries no event handlers at all.
        events = SubscriptionEventCallbacks(use_default_callbacks=self._image_qos_mode != "auto")
        self._image_sub = self.create_subscription(
            self._image_type,
            self._image_topic,
            self._on_image,
            qos,
            callback_group=self._images_group,
            event_callbacks=events,
        )

    def _describe_image_qos(self) -> str:
        reliable = self._image_reliability == ReliabilityPolicy.RELIABLE
        kind = "reliable" if reliable else "best effort"
        if self._image_qos_mode != "auto":
            return f"{kind}: image_qos {self._image_qos_mode}"
        return f"{kind}: image_qos auto follows the publishers"

    def _follow_publishers_qos(self) -> None:
        """``image_qos: auto``: re-subscribe when the publishers' reliability changes."""
        wanted = self._wanted_reliability()
        if wanted != self._image_reliability:
            self._subscribe_images(wanted)
            self.get_logger().info(
                f"image subscription on {self._image_sub.topic_name} now "
                f"{self._describe_image_qos()}"
            )

    def _on_image(self, msg: Any) -> None:
        now = time.monotonic()
        self._events.add("received", now)
        stamp_ns = stamp_to_ns(msg.header.stamp)
        if stamp_ns:
            self._stamp_age.add((self.get_clock().now().nanoseconds - stamp_ns) / 1e6)
        try:
            # Cheap (no conversion): a malformed message must not displace a good frame.
            check_compressed_msg(msg) if self._compressed else check_image_msg(msg)
        except ImageConversionError as error:
            self._events.add("malformed", now)
            total = self._events.total("malformed")
            self._warn("malformed", f"skipped a malformed image ({total} so far): {error}")
            return
        dropped_before = self._cache.dropped
        self._cache.put(stamp_ns, msg, count_drop=self._session.active)
        if self._cache.dropped != dropped_before:
            self._events.add("dropped", now)

    def _on_camera_info(self, msg: Any) -> None:
        """Keep the camera model; rebuilt only when the calibration changes."""
        key = (msg.width, msg.height, msg.distortion_model, tuple(msg.d), tuple(msg.k))
        if key == self._camera_info_key:
            return
        self._camera_info_key = key
        try:
            self._camera = CameraModel.from_camera_info(msg)
        except CameraModelError as error:
            self._camera = None
            self.get_logger().warning(f"camera_info not used, no ~/bearing: {error}")
            return
        self.get_logger().info(
            f"camera_info: {msg.width}x{msg.height}, {msg.distortion_model or 'no distortion'}"
            "; publishing ~/bearing with every detection"
        )

    def _bearing(self, header: Header, image: np.ndarray, box: Any) -> Optional[Vector3Stamped]:
        camera = self._camera
        if camera is None:
            return None
        height, width = image.shape[:2]
        if camera.width and (camera.width, camera.height) != (width, height):
            self._warn(
                "camera_info",
                f"camera_info is for {camera.width}x{camera.height} images but the images are "
                f"{width}x{height}: no ~/bearing",
            )
            return None
        x, y, w, h = box
        try:
            ray = camera.ray_for_box_centre((x + w / 2.0, y + h / 2.0))
        except CameraModelError as error:
            self._warn("camera_info", f"no ~/bearing for this frame: {error}")
            return None
        bearing = Vector3Stamped()
        bearing.header = header
        bearing.vector.x, bearing.vector.y, bearing.vector.z = ray
        return bearing

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

        target_id = self._session.new_target_id()
        init = InitRequest(frame, image, check.box, request.label, target_id)
        self._session.submit(init)
        self._cache.wake()
        timeout = self._set_target_timeout
        if not init.done.wait(timeout):
            cancelled, dropped = self._session.cancel(
                init, f"initialisation did not finish within {timeout:g} s (set_target_timeout)"
            )
            if cancelled and dropped:
                init.message += f"; the previous target {dropped} is dropped"
        if init.outcome != "committed":
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
        previous = self._session.reset()
        self._cache.discard_pending()
        response.success = True
        response.message = f"dropped {previous}" if previous else "no target was set"
        self.get_logger().info("reset: " + response.message)
        return response

    # ------------------------------------------------------------------ output
    def _publish_result(
        self, frame: CachedFrame, image: np.ndarray, result: Any, recorded: Recorded
    ) -> None:
        """Publish one tracked frame (called on the worker thread)."""
        header = frame.msg.header
        self._last_header = header
        if recorded.state == TargetState.TRACKING:
            self._detection_pub.publish(
                detection_message(
                    header, result.box, result.score, recorded.target_id, recorded.label
                )
            )
            bearing = self._bearing(header, image, result.box)
            if bearing is not None:
                self._bearing_pub.publish(bearing)
        self._publish_status(header)
        if not self._publish_debug:
            return
        raw = self._debug_pub.get_subscription_count() > 0
        compressed = self._debug_compressed_pub.get_subscription_count() > 0
        if raw or compressed:
            status = self._session.status(time.monotonic())
            drawn = draw_tracking(
                image,
                result.box,
                result.score,
                recorded.state.name,
                status.fps,
                label=recorded.label,
            )
            if raw:
                self._debug_pub.publish(bgr_to_image_msg(drawn, header))
            if compressed:
                message = bgr_to_compressed_msg(drawn, header)
                message.format = "bgr8; jpeg compressed bgr8"  # as image_transport writes it
                self._debug_compressed_pub.publish(message)

    def _status_fields(self) -> dict:
        status = self._session.status(time.monotonic())
        return {
            "state": int(status.state),
            "target_id": status.target_id,
            "score": status.score,
            "frames_processed": status.frames_processed,
            "fps": status.fps,
            "latency_ms": status.latency_ms,
            "frames_dropped": self._cache.dropped,
            "backend": self._tracker.backend_name,
            "model": self._tracker.model_name,
        }

    def _publish_status(self, header: Header) -> None:
        self._status_pub.publish(status_message(header, self._status_fields()))

    def _on_idle_timer(self) -> None:
        if self._session.state == TargetState.IDLE:
            self._publish_status(self._last_header)

    def _diagnostics_snapshot(self) -> DiagnosticsSnapshot:
        now = time.monotonic()
        events = self._events
        status = self._session.status(now)
        last_image = events.last("received")
        worker = self._worker
        assert worker is not None
        return DiagnosticsSnapshot(
            window_s=events.window_s,
            topic=self._image_sub.topic_name,
            received_rate=events.rate("received", now),
            expected_rate=float(self._param("expected_image_rate")),
            since_last_image_s=None if last_image is None else now - last_image,
            stamp_age_ms=self._stamp_age.median(),
            stamp_age_max_ms=self._stamp_age.maximum(),
            malformed=events.count("malformed", now),
            malformed_total=events.total("malformed"),
            dropped=events.count("dropped", now),
            dropped_total=self._cache.dropped,
            received_total=self._cache.received,
            state=status.state.name,
            target_id=status.target_id,
            processed_rate=events.rate("processed", now),
            processed_total=status.frames_processed,
            fps=status.fps,
            latency_ms=status.latency_ms,
            tracking_errors=events.count("tracking_error", now),
            tracking_errors_total=events.total("tracking_error"),
            worker_alive=worker.alive,
            worker_stopping=worker.stopping,
            worker_busy_s=worker.busy_for(now),
            worker_errors=events.count("worker_error", now),
            worker_errors_total=events.total("worker_error"),
            set_target_waiting=self._session.waiting,
            backend=self._tracker.backend_name,
            model=self._tracker.model_name,
        )

    def _publish_diagnostics(self) -> None:
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        array = diagnostics_array(
            header, self.get_fully_qualified_name(), self._hardware_id, self._diagnostics_snapshot()
        )
        self._diagnostics_pub.publish(array)

    # ------------------------------------------------------------------ shutdown
    def destroy_node(self) -> None:
        """Stop the worker, release the model, then the ROS entities; safe on a node whose
        construction failed half-way (rclpy destroys it again on shutdown)."""
        worker, self._worker = getattr(self, "_worker", None), None
        if worker is not None and not worker.stop(timeout=5.0):
            self.get_logger().warning("the worker was still busy after 5 s; leaving it")
        tracker, self._tracker = getattr(self, "_tracker", None), None
        if tracker is not None:
            tracker.close()
        handler = getattr(self, "_log_handler", None)
        if handler is not None:
            logging.getLogger("ros_tracker").removeHandler(handler)
        super().destroy_node()


def _spin(node: TrackerNode) -> None:
    # Image callback, up to three concurrent service calls, timers, parameter services.
    executor = MultiThreadedExecutor(num_threads=6)
    executor.add_node(node)
    try:
        executor.spin()
    finally:
        executor.shutdown(timeout_sec=1.0)


def main(args: Optional[List[str]] = None) -> int:
    return run_node("tracker", TrackerNode, _spin, (StartupError,), args)


if __name__ == "__main__":
    sys.exit(main())
