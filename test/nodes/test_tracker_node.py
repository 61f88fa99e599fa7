"""The tracker node in its own process, driven over real rclpy as a user's program would.

The node runs a zoo network with random weights (no trained model is needed to check
everything that does not depend on accuracy); its confidence is then meaningless, so most
tests set lost_threshold to 0 and the LOST tests raise it.
"""

from __future__ import annotations

import math
import os
import threading
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Vector3Stamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.duration import Duration
from rclpy.qos import ReliabilityPolicy
from ros_harness import (
    Driver,
    NodeProcess,
    fresh_domain_id,
    parameter_args,
    ros_environment,
    with_python_path,
)
from ros_tracker_interfaces.msg import TrackerStatus
from ros_tracker_interfaces.srv import SetTarget
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D

from ros_tracker.nodes.image_conversion import bgr_to_compressed_msg, bgr_to_image_msg
from ros_tracker.sources.synthetic import SyntheticScene

STARTUP_TIMEOUT_S = 90.0
# A zoo network with random weights by default; make test-jazzy (no torch there) runs the
# shipped model from its installed ONNX graphs instead.
MODEL = os.environ.get("ROS_TRACKER_TEST_MODEL", "hit_tiny")
WIDTH, HEIGHT = 320, 240
STATE_IDLE, STATE_TRACKING, STATE_LOST = (
    TrackerStatus.IDLE,
    TrackerStatus.TRACKING,
    TrackerStatus.LOST,
)


@pytest.fixture(scope="module")
def scene_frames():
    scene = SyntheticScene(width=WIDTH, height=HEIGHT, frames=60, seed=3)
    return list(scene)


class TrackerUnderTest:
    """One tracker_node process plus the test-side publishers and collectors."""

    def __init__(self, params, cache_dir, compressed=False, python_path=None):
        self.domain = fresh_domain_id()
        env = ros_environment(self.domain)
        if python_path is not None:
            env = with_python_path(env, python_path)
        defaults = {
            "model": MODEL,
            "engine_cache_dir": str(cache_dir),
            "lost_threshold": 0.0,
            "frame_cache_size": 10,
            "resolution_change_frames": 3,
            "compressed": compressed,
        }
        defaults.update(params)
        self.process = NodeProcess("tracker_node", parameter_args(defaults), env)
        self.driver = Driver(self.domain)
        topic = "/image/compressed" if compressed else "/image"
        self.images = self.driver.publisher(CompressedImage if compressed else Image, topic)
        self.detections = self.driver.collect(Detection2D, "/tracker/detection")
        self.statuses = self.driver.collect(TrackerStatus, "/tracker/status")
        self.debug_images = self.driver.collect(Image, "/tracker/debug_image", depth=5)
        self.diagnostics = self.driver.collect(DiagnosticArray, "/diagnostics")
        self.compressed = compressed

    def wait_ready(self):
        ready = self.process.wait_for_output("ready:", STARTUP_TIMEOUT_S)
        assert ready, "tracker_node did not start:\n" + self.process.output
        assert self.driver.wait_for_subscriber(self.images), "node never subscribed to images"
        # image_qos auto: the node subscribes reliable once it sees this reliable publisher.
        topic = self.images.topic_name
        assert wait_until(
            lambda: subscription_reliability(self.driver, topic) == {ReliabilityPolicy.RELIABLE},
            20.0,
        ), self.process.output
        assert self.driver.wait_for_subscriber(self.images), "node never re-subscribed"

    def publish(self, image, age_s=0.0):
        """Publish one BGR frame stamped now (or ``age_s`` earlier); returns its header."""
        msg = bgr_to_compressed_msg(image) if self.compressed else bgr_to_image_msg(image)
        self.publish_msg(msg, age_s)
        return msg.header

    def publish_msg(self, msg, age_s=0.0):
        stamp = self.driver.now() - Duration(nanoseconds=int(age_s * 1e9))
        msg.header.stamp = stamp.to_msg()
        msg.header.frame_id = "camera"
        self.images.publish(msg)

    def publish_frames(self, frames, period=0.05):
        headers = []
        for frame in frames:
            headers.append(self.publish(frame.image))
            time.sleep(period)
        return headers

    def set_target(self, box, stamp=None, label="", theta=0.0):
        request = SetTarget.Request()
        if stamp is not None:
            request.header.stamp = stamp
        x, y, w, h = box
        request.bbox.center.position.x = x + w / 2.0
        request.bbox.center.position.y = y + h / 2.0
        request.bbox.center.theta = theta
        request.bbox.size_x = w
        request.bbox.size_y = h
        request.label = label
        return self.driver.call(SetTarget, "/tracker/set_target", request)

    def reset(self):
        return self.driver.call(Trigger, "/tracker/reset", Trigger.Request())

    def set_parameter(self, name, value):
        parameter = Parameter(name=name)
        if isinstance(value, bool):
            parameter.value = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, float):
            parameter.value = ParameterValue(
                type=ParameterType.PARAMETER_DOUBLE, double_value=value
            )
        elif isinstance(value, int):
            parameter.value = ParameterValue(
                type=ParameterType.PARAMETER_INTEGER, integer_value=value
            )
        else:
            parameter.value = ParameterValue(
                type=ParameterType.PARAMETER_STRING, string_value=value
            )
        request = SetParameters.Request(parameters=[parameter])
        return self.driver.call(SetParameters, "/tracker/set_parameters", request).results[0]

    def close(self, interrupts=1):
        self.driver.close()
        return self.process.stop(interrupts)


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory):
    """One engine cache for the module: the random-weight model is exported once."""
    return tmp_path_factory.getbasetemp() / "engine_cache"


@pytest.fixture(scope="module")
def node(engine_cache):
    under_test = TrackerUnderTest({}, engine_cache)
    try:
        under_test.wait_ready()
        yield under_test
    finally:
        code = under_test.close(interrupts=2)  # as Ctrl-C under ros2 launch does
        assert code == 0, "tracker_node did not shut down cleanly:\n" + under_test.process.output
        assert "Traceback" not in under_test.process.output, under_test.process.output


@pytest.fixture
def fresh(node):
    """The shared node with no target and empty collectors."""
    reset_at = time.time()
    assert node.reset().success
    node.set_parameter("lost_threshold", 0.0)
    # Settled once diagnostics taken after the reset show no target (and what the node
    # published before it has come in, so clearing below leaves nothing stale behind).
    wait_for_diagnostics(node, reset_at, lambda array: tracking_state(array) == "IDLE")
    for collector in (node.detections, node.statuses, node.debug_images, node.diagnostics):
        collector.clear()
    return node


def key(header):
    """A header's stamp as a hashable pair."""
    return (header.stamp.sec, header.stamp.nanosec)


def diagnostic_values(array, concern):
    """The key/values of one of the node's diagnostic statuses ("images", "tracking", ...)."""
    for status in array.status:
        if status.name.endswith(": " + concern):
            return {kv.key: kv.value for kv in status.values}
    raise AssertionError(f"no {concern!r} status in {[s.name for s in array.status]}")


def diagnostic_status(array, concern):
    return [s for s in array.status if s.name.endswith(": " + concern)][0]


def stamp_s(header):
    """A header's stamp in seconds: the node stamps with system time, as time.time()."""
    return header.stamp.sec + 1e-9 * header.stamp.nanosec


def tracking_state(array):
    return diagnostic_values(array, "tracking")["state"]


def images_count(array, name):
    """An "images" counter of a diagnostics array: frames_received, frames_malformed, ..."""
    return int(diagnostic_values(array, "images")[name])


def wait_for_diagnostics(node, since, condition=lambda array: True, timeout=30.0):
    """The node's newest diagnostics once it is stamped after ``since`` (a time.time() taken
    before the action: the stamp is taken before the snapshot) and meets ``condition``."""
    found = []

    def ready(msgs):
        if msgs and stamp_s(msgs[-1].header) > since and condition(msgs[-1]):
            found.append(msgs[-1])
            return True
        return False

    assert node.diagnostics.wait_for(ready, timeout), (
        "no diagnostics stamped after the action met the condition; newest: "
        + str([diagnostic_values(a, "images") for a in node.diagnostics.snapshot()[-1:]])
    )
    return found[0]


def latest_status(node):
    statuses = node.statuses.snapshot()
    return statuses[-1] if statuses else None


def test_idle_status_at_1hz_before_any_target(fresh):
    assert fresh.statuses.wait_for(lambda msgs: len(msgs) >= 2, timeout=5.0)
    status = latest_status(fresh)
    assert status.state == STATE_IDLE
    assert status.model == MODEL
    assert status.backend.startswith("onnxruntime")
    assert fresh.detections.snapshot() == []


def test_set_target_tracks_and_publishes_every_output(fresh, scene_frames):
    first = scene_frames[0]
    fresh.publish_frames(scene_frames[:3])
    response = fresh.set_target(first.box, label="cat")
    assert response.success, response.message
    assert response.target_id
    assert "clipped" not in response.message  # the box lies inside the image
    headers = fresh.publish_frames(scene_frames[3:15])
    assert fresh.detections.wait_for(lambda msgs: len(msgs) >= 5, timeout=15.0)
    detections = fresh.detections.snapshot()
    published = {key(h) for h in headers}
    for detection in detections:
        assert detection.id == response.target_id
        assert detection.header.frame_id == "camera"
        assert detection.results[0].hypothesis.class_id == "cat"
        assert 0.0 <= detection.results[0].hypothesis.score <= 1.0
        assert detection.bbox.size_x > 0 and detection.bbox.size_y > 0
        assert 0.0 <= detection.bbox.center.position.x <= WIDTH
        assert 0.0 <= detection.bbox.center.position.y <= HEIGHT
    # Detection headers are the source images' headers (cached frames caught up on included).
    assert {key(d.header) for d in detections[-3:]} <= published
    assert fresh.statuses.wait_for(
        lambda msgs: any(m.state == STATE_TRACKING and m.frames_processed > 0 for m in msgs), 5.0
    )
    status = [m for m in fresh.statuses.snapshot() if m.state == STATE_TRACKING][-1]
    assert status.target_id == response.target_id
    assert status.fps > 0.0
    # Debug images are drawn because this test process subscribes to them.
    assert fresh.debug_images.wait_for(lambda msgs: len(msgs) >= 1, timeout=5.0)
    debug = fresh.debug_images.snapshot()[-1]
    assert (debug.width, debug.height, debug.encoding) == (WIDTH, HEIGHT, "bgr8")
    assert fresh.diagnostics.wait_for(lambda msgs: len(msgs) >= 1, timeout=5.0)
    array = fresh.diagnostics.snapshot()[-1]
    values = diagnostic_values(array, "tracking")
    assert values["model"] == MODEL and "frames_dropped" in values and "fps" in values
    worker = diagnostic_status(array, "worker")
    assert worker.level == DiagnosticStatus.OK and worker.hardware_id == "cpu"
    assert {s.name for s in array.status} == {
        "/tracker: images",
        "/tracker: tracking",
        "/tracker: worker",
    }


def test_bearing_follows_the_target_through_the_camera_model(fresh, scene_frames):
    k = np.array([[250.0, 0.0, 161.3], [0.0, 248.0, 118.9], [0.0, 0.0, 1.0]])
    d = np.array([-0.25, 0.07, 0.001, -0.002, 0.0])
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    info.k = [float(v) for v in k.reshape(-1)]
    info.d = [float(v) for v in d]
    info_pub = fresh.driver.publisher(CameraInfo, "/camera_info")
    bearings = fresh.driver.collect(Vector3Stamped, "/tracker/bearing")
    compressed = fresh.driver.collect(CompressedImage, "/tracker/debug_image/compressed", depth=5)
    try:
        assert fresh.driver.wait_for_subscriber(info_pub)
        info_pub.publish(info)
        assert fresh.process.wait_for_output("publishing ~/bearing", 10.0), fresh.process.output
        fresh.publish_frames(scene_frames[:2])
        assert fresh.set_target(scene_frames[1].box).success
        fresh.publish_frames(scene_frames[2:14])
        assert bearings.wait_for(lambda msgs: len(msgs) >= 5, timeout=15.0)
        detections = {key(m.header): m for m in fresh.detections.snapshot()}
        checked = 0
        for bearing in bearings.snapshot():
            ray = np.array([bearing.vector.x, bearing.vector.y, bearing.vector.z])
            assert abs(np.linalg.norm(ray) - 1.0) < 1e-9 and ray[2] > 0
            detection = detections.get(key(bearing.header))
            if detection is None:
                continue
            assert bearing.header.frame_id == detection.header.frame_id == "camera"
            # OpenCV projects the bearing back onto the box centre (pixel centres at integers).
            zero = np.zeros(3)
            pixel = cv2.projectPoints(ray.reshape(1, 3), zero, zero, k, d)[0].reshape(2)
            centre = (detection.bbox.center.position.x, detection.bbox.center.position.y)
            assert np.allclose(pixel + 0.5, centre, atol=1e-4), (pixel, centre)
            checked += 1
        assert checked >= 3
        assert compressed.wait_for(lambda msgs: len(msgs) >= 1, timeout=10.0)
        jpeg = np.frombuffer(bytes(compressed.snapshot()[-1].data), np.uint8)
        assert cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape == (HEIGHT, WIDTH, 3)
    finally:
        fresh.driver.node.destroy_publisher(info_pub)


def test_reset_returns_to_idle_and_stops_detections(fresh, scene_frames):
    fresh.publish_frames(scene_frames[:2])
    assert fresh.set_target(scene_frames[1].box).success
    fresh.publish_frames(scene_frames[2:6])
    assert fresh.detections.wait_for(lambda msgs: len(msgs) >= 1, timeout=10.0)
    reset_at = time.time()
    response = fresh.reset()
    assert response.success and "dropped" in response.message
    # Diagnostics taken after the reset: the target is gone and earlier output has come in.
    settled = wait_for_diagnostics(fresh, reset_at, lambda a: tracking_state(a) == "IDLE")
    received = images_count(settled, "frames_received")
    processed = int(diagnostic_values(settled, "tracking")["frames_processed"])
    fresh.detections.clear()
    fresh.publish_frames(scene_frames[6:12])
    sent_at = time.time()
    # Only once the node reports every one of these frames received is "nothing was
    # published for them" a check.
    after = wait_for_diagnostics(
        fresh, sent_at, lambda a: images_count(a, "frames_received") >= received + 6
    )
    assert fresh.detections.snapshot() == []
    assert int(diagnostic_values(after, "tracking")["frames_processed"]) == processed
    assert fresh.statuses.wait_for(lambda msgs: msgs and msgs[-1].state == STATE_IDLE, 30.0)


@pytest.mark.parametrize(
    "box, reason",
    [
        ((float("nan"), 10.0, 20.0, 20.0), "NaN or infinite"),
        ((10.0, 10.0, float("inf"), 20.0), "NaN or infinite"),
        ((10.0, 10.0, 0.0, 20.0), "zero or negative size"),
        ((10.0, 10.0, 20.0, -5.0), "zero or negative size"),
        ((WIDTH + 50.0, 10.0, 20.0, 20.0), "entirely outside"),
        ((-100.0, -100.0, 50.0, 50.0), "entirely outside"),
    ],
)
def test_set_target_rejects_invalid_boxes(fresh, scene_frames, box, reason):
    fresh.publish_frames(scene_frames[:2])
    response = fresh.set_target(box)
    assert not response.success
    assert reason in response.message
    assert response.target_id == ""
    assert latest_status(fresh) is None or latest_status(fresh).state == STATE_IDLE


def test_box_partly_outside_is_clipped(fresh, scene_frames):
    fresh.publish_frames(scene_frames[:2])
    response = fresh.set_target((WIDTH - 30.0, HEIGHT - 30.0, 60.0, 60.0))
    assert response.success, response.message
    assert "clipped" in response.message


def received_total(node):
    """frames_received of the node's newest diagnostics (0 before the first)."""
    arrays = node.diagnostics.snapshot()
    return int(diagnostic_values(arrays[-1], "images")["frames_received"]) if arrays else 0


def publish_and_wait(node, frames, at_least, period=0.03):
    """Publish ``frames``; wait until the node reports ``at_least`` of them received."""
    assert node.diagnostics.wait_for(lambda msgs: len(msgs) >= 1, timeout=5.0)
    before = received_total(node)
    headers = node.publish_frames(frames, period=period)
    assert node.diagnostics.wait_for(
        lambda msgs: received_total(node) >= before + at_least, timeout=15.0
    ), (before, received_total(node))
    return headers


def test_stamp_older_than_cache_is_rejected(fresh, scene_frames):
    # Once 11 of them arrived, the first is out of the 10-frame cache, lost or not.
    headers = publish_and_wait(fresh, scene_frames[:20], at_least=11)
    response = fresh.set_target(scene_frames[0].box, stamp=headers[0].stamp)
    assert not response.success
    assert "older than the frame cache" in response.message
    future = headers[-1].stamp
    future.sec += 100
    unknown = fresh.set_target(scene_frames[0].box, stamp=future)
    assert not unknown.success and "newer than the newest image" in unknown.message


def test_set_target_on_cached_frame_catches_up(fresh, scene_frames):
    headers = publish_and_wait(fresh, scene_frames[:8], at_least=8)
    target_frame = 3
    response = fresh.set_target(scene_frames[target_frame].box, stamp=headers[target_frame].stamp)
    assert response.success, response.message
    assert "catching up through 4 newer cached frame(s)" in response.message
    # The frames after the one the box was drawn on are tracked, each with its own header.
    caught_up = {key(h) for h in headers[target_frame + 1 :]}
    assert fresh.detections.wait_for(
        lambda msgs: caught_up <= {key(m.header) for m in msgs}, timeout=15.0
    )


def subscription_reliability(driver, topic):
    """Reliability of the tracker's subscription(s) to ``topic``, as the graph shows them."""
    infos = driver.node.get_subscriptions_info_by_topic(topic)
    return {info.qos_profile.reliability for info in infos if info.node_name == "tracker"}


def test_image_qos_auto_follows_the_publishers(fresh, scene_frames):
    def node_reliability():
        return subscription_reliability(fresh.driver, "/image")

    assert node_reliability() == {ReliabilityPolicy.RELIABLE}
    # A best-effort publisher joins: a reliable subscription would not hear it.
    best_effort = fresh.driver.publisher(Image, "/image", reliable=False)
    try:
        assert wait_until(lambda: node_reliability() == {ReliabilityPolicy.BEST_EFFORT}, 20.0)
        assert fresh.driver.wait_for_subscriber(best_effort)
    finally:
        fresh.driver.node.destroy_publisher(best_effort)
    assert wait_until(lambda: node_reliability() == {ReliabilityPolicy.RELIABLE}, 20.0)
    assert fresh.driver.wait_for_subscriber(fresh.images)
    assert "image subscription on /image now best effort" in fresh.process.output


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_parameters_are_validated(fresh):
    bad = fresh.set_parameter("lost_threshold", 2.0)
    assert not bad.successful
    read_only = fresh.set_parameter("model", "hcat")
    assert not read_only.successful
    good = fresh.set_parameter("lost_threshold", 0.25)
    assert good.successful, good.reason


@pytest.mark.skipif(
    MODEL != "hit_tiny", reason="needs random weights: a trained model can reach confidence 1.0"
)
def test_lost_when_confidence_stays_low_and_recovers(fresh, scene_frames):
    fresh.publish_frames(scene_frames[:2])
    assert fresh.set_target(scene_frames[1].box).success
    # No estimate reaches confidence 1.0: every frame is weak, LOST after lost_frames.
    assert fresh.set_parameter("lost_threshold", 1.0).successful
    headers = fresh.publish_frames(scene_frames[2:20])
    assert fresh.statuses.wait_for(lambda msgs: any(m.state == STATE_LOST for m in msgs), 30.0)
    # The worker always tracks the newest frame and publishes a status for each one it
    # tracks (after its detection, if any): once the last frame's status is in, so is
    # everything published for the frames before it.
    assert fresh.statuses.wait_for(lambda msgs: status_for(msgs, headers[-1]), 30.0)
    fresh.detections.clear()
    headers = fresh.publish_frames(scene_frames[20:26])
    assert fresh.statuses.wait_for(lambda msgs: status_for(msgs, headers[-1]), 30.0)
    assert fresh.detections.snapshot() == [], "detections published while LOST"
    assert fresh.statuses.snapshot()[-1].state == STATE_LOST
    # Every estimate clears threshold 0: back to TRACKING while the tracker kept searching.
    assert fresh.set_parameter("lost_threshold", 0.0).successful
    fresh.publish_frames(scene_frames[26:34])
    assert fresh.detections.wait_for(lambda msgs: len(msgs) >= 1, timeout=30.0)
    # The status of a detection's frame follows the detection.
    first = fresh.detections.snapshot()[0].header
    assert fresh.statuses.wait_for(lambda msgs: status_for(msgs, first), 30.0)
    assert fresh.statuses.snapshot()[-1].state == STATE_TRACKING


def status_for(statuses, header):
    """Whether ``statuses`` hold the status of the frame with ``header``."""
    return any(key(m.header) == key(header) for m in statuses)


def test_malformed_images_are_skipped_and_counted(fresh, scene_frames):
    fresh.publish_frames(scene_frames[:2])
    assert fresh.set_target(scene_frames[1].box).success
    assert fresh.diagnostics.wait_for(lambda msgs: len(msgs) >= 1, timeout=5.0)
    before = int(diagnostic_values(fresh.diagnostics.snapshot()[-1], "images")["frames_malformed"])
    bad_encoding = bgr_to_image_msg(scene_frames[2].image)
    bad_encoding.encoding = "yuv9000"
    short_data = bgr_to_image_msg(scene_frames[3].image)
    short_data.step = WIDTH * 3 - 1
    for msg in (bad_encoding, short_data):
        fresh.publish_msg(msg)

    # Counted on arrival, however busy the worker is, and reported while it is recent.
    def malformed_seen(msgs):
        for array in msgs:
            images = diagnostic_status(array, "images")
            values = {kv.key: kv.value for kv in images.values}
            if int(values["frames_malformed"]) >= before + 2:
                return images.level == DiagnosticStatus.WARN and "malformed" in images.message
        return False

    assert fresh.diagnostics.wait_for(malformed_seen, timeout=15.0)
    assert fresh.process.wait_for_output("unsupported image encoding 'yuv9000'", 10.0)
    # The good frames that follow are tracked: a malformed one never displaced them.
    headers = fresh.publish_frames(scene_frames[4:10])
    wanted = {key(h) for h in headers}
    assert fresh.detections.wait_for(
        lambda msgs: wanted & {key(m.header) for m in msgs}, timeout=15.0
    )
    assert fresh.process.process.poll() is None


def test_catch_up_frames_stay_out_of_the_latency_window(fresh, scene_frames):
    # Cached frames stamped 100 s ago: a SetTarget on the first catches up through the rest.
    def received(msgs):
        return int(diagnostic_values(msgs[-1], "images")["frames_received"]) if msgs else 0

    assert fresh.diagnostics.wait_for(lambda msgs: len(msgs) >= 1, timeout=5.0)
    before = received(fresh.diagnostics.snapshot())
    headers = []
    for frame in scene_frames[:6]:
        headers.append(fresh.publish(frame.image, age_s=100.0))
        time.sleep(0.05)
    assert fresh.diagnostics.wait_for(lambda msgs: received(msgs) >= before + 6, timeout=10.0)
    response = fresh.set_target(scene_frames[0].box, stamp=headers[0].stamp)
    assert response.success, response.message
    caught_up = {key(h) for h in headers[1:]}
    assert fresh.detections.wait_for(
        lambda msgs: caught_up & {key(m.header) for m in msgs}, timeout=15.0
    )
    live = {key(h) for h in fresh.publish_frames(scene_frames[6:16])}
    assert fresh.statuses.wait_for(
        lambda msgs: live & {key(m.header) for m in msgs if m.latency_ms > 0}, timeout=15.0
    )
    mine = [m for m in fresh.statuses.snapshot() if m.target_id == response.target_id]
    # A window holding the catch-up frames would report about 100,000 ms.
    assert mine and max(m.latency_ms for m in mine) < 50_000.0, [m.latency_ms for m in mine]


def test_resolution_change_is_skipped_then_adopted(fresh, scene_frames):
    fresh.publish_frames(scene_frames[:2])
    assert fresh.set_target(scene_frames[1].box).success
    fresh.publish_frames(scene_frames[2:5])
    assert fresh.detections.wait_for(lambda msgs: len(msgs) >= 1, timeout=10.0)
    small = np.ascontiguousarray(scene_frames[5].image[: HEIGHT // 2, : WIDTH // 2])
    small_stamp = key(fresh.publish(small))
    # The worker logs the skip when it takes the frame (the first one of this node).
    assert fresh.process.wait_for_output("resolution changed", 30.0), fresh.process.output
    tracked = {key(m.header) for m in fresh.detections.snapshot()}
    assert small_stamp not in tracked, "a frame of another resolution was tracked"
    assert "resolution changed" in fresh.process.output
    # Still tracking at the original resolution.
    later = {key(h) for h in fresh.publish_frames(scene_frames[6:10])}
    assert fresh.detections.wait_for(
        lambda msgs: later & {key(m.header) for m in msgs}, timeout=30.0
    )
    # A lasting change (resolution_change_frames=3) is adopted and the target dropped.
    # Every frame of another size counts as malformed when the worker takes it: each one
    # waits for the previous to be counted, so none replaces another before it is checked.
    malformed = images_count(wait_for_diagnostics(fresh, time.time()), "frames_malformed")
    for sent in range(1, 4):
        fresh.publish(small)
        wait_for_diagnostics(
            fresh,
            0.0,
            lambda a, sent=sent: images_count(a, "frames_malformed") >= malformed + sent,
        )
    assert fresh.statuses.wait_for(lambda msgs: msgs[-1].state == STATE_IDLE, timeout=30.0)
    assert fresh.process.wait_for_output("adopted the new resolution", 30.0)
    assert "adopted the new resolution" in fresh.process.output


def test_fast_publisher_drops_frames_without_growing_latency(fresh, scene_frames):
    fresh.publish_frames(scene_frames[:2])
    assert fresh.set_target(scene_frames[1].box).success
    fresh.statuses.clear()
    start = time.monotonic()
    index = 0
    while time.monotonic() - start < 4.0:
        # Bursts of four back to back, 30 bursts a second: however fast the model is on this
        # machine, frames of a burst arrive quicker than one inference, so the node must drop.
        for _ in range(4):
            fresh.publish(scene_frames[2 + index % 50].image)
            index += 1
        time.sleep(1.0 / 30.0)

    def tracking(msgs):
        return [m for m in msgs if m.state == STATE_TRACKING]

    assert fresh.statuses.wait_for(lambda msgs: len(tracking(msgs)) >= 3, timeout=10.0)
    statuses = tracking(fresh.statuses.snapshot())
    first, last = statuses[0], statuses[-1]  # the counters are the node's totals
    assert last.frames_dropped > first.frames_dropped
    assert last.frames_processed - first.frames_processed < index
    # Latency stays within a few processing periods; a queue would make it grow to seconds.
    period_ms = 1000.0 / last.fps
    assert last.latency_ms < 4.0 * period_ms, (last.latency_ms, period_ms)
    # Services answer while inference is busy.
    assert fresh.reset().success


def test_set_target_before_any_image_is_rejected(engine_cache):
    under_test = TrackerUnderTest({}, engine_cache)
    try:
        under_test.wait_ready()
        response = under_test.set_target((10.0, 10.0, 20.0, 20.0))
        assert not response.success
        assert "no image received yet" in response.message
    finally:
        assert under_test.close() == 0


def test_compressed_images(engine_cache, scene_frames):
    under_test = TrackerUnderTest({}, engine_cache, compressed=True)
    try:
        under_test.wait_ready()
        under_test.publish_frames(scene_frames[:2])
        response = under_test.set_target(scene_frames[1].box)
        assert response.success, response.message
        under_test.publish_frames(scene_frames[2:8])
        assert under_test.detections.wait_for(lambda msgs: len(msgs) >= 1, timeout=15.0)
        detection = under_test.detections.snapshot()[-1]
        assert math.isfinite(detection.bbox.size_x)
    finally:
        assert under_test.close() == 0


@pytest.mark.parametrize(
    "file_name, content",
    [
        ("broken.safetensors", b""),
        ("broken.safetensors", b"not a safetensors file at all"),
        ("nowhere.onnx", None),  # missing
    ],
)
def test_bad_model_file_fails_at_startup_with_a_clear_error(tmp_path, file_name, content):
    model = tmp_path / file_name
    if content is not None:
        model.write_bytes(content)
    process = NodeProcess(
        "tracker_node",
        parameter_args({"model": str(model), "engine_cache_dir": str(tmp_path / "cache")}),
        ros_environment(fresh_domain_id()),
    )
    assert process.process.wait(timeout=STARTUP_TIMEOUT_S) == 1
    process.stop()
    assert "cannot load model" in process.output
    assert str(model) in process.output


@pytest.mark.parametrize(
    "param, value, rule",
    [
        ("backend", "magic", "backend must be one of auto, tensorrt, onnxruntime, torch"),
        ("lost_threshold", 1, "lost_threshold must be a floating-point number"),
        ("lost_threshold", 1.5, "lost_threshold must be in [0, 1], got 1.5"),
        ("value_range", [0, 0], "value_range must be a list of floating-point numbers"),
        ("value_range", [5.0, 1.0], "value_range must be [low, high] with low < high"),
        ("frame_cache_size", 0, "frame_cache_size must be in [1, 600], got 0"),
    ],
)
def test_invalid_parameter_at_startup_is_one_clear_line(tmp_path, param, value, rule):
    process = NodeProcess(
        "tracker_node",
        parameter_args({param: value, "engine_cache_dir": str(tmp_path / "cache")}),
        ros_environment(fresh_domain_id()),
    )
    assert process.process.wait(timeout=STARTUP_TIMEOUT_S) == 1
    process.stop()
    lines = [line for line in process.lines if line.strip()]
    assert len(lines) == 1, process.output
    assert "[FATAL]" in lines[0] and "invalid parameter: " + rule in lines[0], lines[0]


def test_missing_dependency_is_one_clear_line(tmp_path):
    shadow = tmp_path / "shadow" / "cv2"
    shadow.mkdir(parents=True)
    # As on a robot without OpenCV: "import cv2" fails.
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'cv2'\", name='cv2')\n"
    )
    env = ros_environment(fresh_domain_id())
    env["PYTHONPATH"] = str(shadow.parent) + os.pathsep + env.get("PYTHONPATH", "")
    process = NodeProcess("tracker_node", [], env)
    assert process.process.wait(timeout=STARTUP_TIMEOUT_S) == 1
    process.stop()
    lines = [line for line in process.lines if line.strip()]
    assert len(lines) == 1, process.output
    assert "missing Python module 'cv2': rosdep install (python3-opencv)" in lines[0]


@pytest.mark.parametrize(
    "hidden, backend",
    [
        (("onnxruntime",), "onnxruntime"),
        # auto falls back to torch where onnxruntime is missing (and the native TensorRT
        # backend needs torch too): without both, the shipped model has no backend left.
        (("onnxruntime", "torch"), "auto"),
    ],
)
def test_missing_inference_dependency_is_one_clear_line(tmp_path, hidden, backend):
    shadow = tmp_path / "shadow"
    for name in hidden:  # as on a robot without them: "import <name>" fails
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n"
        )
    env = with_python_path(ros_environment(fresh_domain_id()), shadow)
    # The shipped default model, as `ros2 run ros_tracker tracker_node` starts it.
    params = {"backend": backend, "engine_cache_dir": str(tmp_path / "cache")}
    process = NodeProcess("tracker_node", parameter_args(params), env)
    try:
        assert process.process.wait(timeout=STARTUP_TIMEOUT_S) == 1, process.output
    finally:
        process.stop()
    assert "Traceback" not in process.output, process.output
    failures = [line for line in process.lines if "[FATAL]" in line or "[ERROR]" in line]
    assert len(failures) == 1, process.output
    assert "cannot import onnxruntime (No module named 'onnxruntime')" in failures[0]
    assert "to install onnxruntime: pip install -r requirements-robot.txt" in failures[0]


def test_a_dead_worker_is_reported_in_diagnostics(engine_cache, scene_frames, tmp_path):
    """The worker loop survives every Exception, but a BaseException from inside inference
    (a library calling sys.exit(), which ends a thread silently) still ends the thread: the
    node must then say in its diagnostics that nothing is tracked any more."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import ros_tracker.runtime.tracker\n"
        "\n"
        "def track(self, image):\n"
        "    raise SystemExit(3)  # as a library that calls sys.exit() would\n"
        "\n"
        "ros_tracker.runtime.tracker.Tracker.track = track\n"
    )
    under_test = TrackerUnderTest({}, engine_cache, python_path=site)
    try:
        under_test.wait_ready()
        under_test.publish_frames(scene_frames[:2])
        # Both in the cache: the target is set on the newest, so there is nothing to catch
        # up on (initialize() is untouched) and the worker is still alive afterwards.
        wait_for_diagnostics(under_test, 0.0, lambda a: images_count(a, "frames_received") >= 2)
        response = under_test.set_target(scene_frames[1].box)
        assert response.success, response.message
        alive = wait_for_diagnostics(under_test, time.time())
        assert diagnostic_status(alive, "worker").level == DiagnosticStatus.OK
        assert diagnostic_values(alive, "worker")["alive"] == "True"
        published_at = time.time()
        # The first live frame the worker tracks ends its thread.
        under_test.publish_frames(scene_frames[2:4])
        array = wait_for_diagnostics(
            under_test,
            published_at,
            lambda a: diagnostic_status(a, "worker").level == DiagnosticStatus.ERROR,
        )
        worker = diagnostic_status(array, "worker")
        assert worker.message == "worker thread is not running: nothing is tracked"
        assert diagnostic_values(array, "worker")["alive"] == "False"
        assert under_test.detections.snapshot() == []
    finally:
        code = under_test.close()
    assert code == 0, under_test.process.output
    assert "Traceback" not in under_test.process.output, under_test.process.output


def test_timeout_and_reset_cancel_waiting_set_targets_then_ctrl_c(engine_cache, scene_frames):
    """A SetTarget waits behind a long catch-up: its timeout leaves the previous target as it
    was, a reset cancels one that waits, and a double SIGINT while tracking ends cleanly."""
    under_test = TrackerUnderTest(
        {"frame_cache_size": 300, "set_target_timeout": 0.5}, engine_cache
    )
    stop = threading.Event()

    def stream():
        index = 0
        while not stop.is_set():
            under_test.publish(scene_frames[index % len(scene_frames)].image)
            index += 1
            time.sleep(0.03)

    streamer = threading.Thread(target=stream)
    try:
        under_test.wait_ready()
        frames = [scene_frames[i % len(scene_frames)] for i in range(300)]
        headers = under_test.publish_frames(frames, period=0.03)  # camera rate

        def received(msgs):
            return msgs and int(diagnostic_values(msgs[-1], "images")["frames_received"]) >= 200

        assert under_test.diagnostics.wait_for(received, timeout=30.0), diagnostic_values(
            under_test.diagnostics.snapshot()[-1], "images"
        )
        first = under_test.set_target(frames[0].box, stamp=headers[0].stamp)
        if not first.success:  # the very first frame was lost on the way: take the oldest
            oldest = first.message.split("oldest cached image ")[1].split(";")[0]
            sec, nanosec = (int(part) for part in oldest.split("."))
            stamp = headers[0].stamp
            stamp.sec, stamp.nanosec = sec, nanosec
            first = under_test.set_target(frames[0].box, stamp=stamp)
        assert first.success, first.message
        behind = int(first.message.split("catching up through ")[1].split()[0])
        assert behind >= 100, first.message  # the worker is now busy for seconds

        second = under_test.set_target(frames[-1].box)  # waits behind the catch-up
        assert not second.success
        assert "did not finish within 0.5 s (set_target_timeout)" in second.message
        assert "dropped" not in second.message  # cancelled before the tracker was touched

        assert under_test.set_parameter("set_target_timeout", 120.0).successful
        answers = []
        waiting = threading.Thread(
            target=lambda: answers.append(under_test.set_target(frames[-1].box))
        )
        # Only diagnostics stamped after this call can show the third request: an older
        # message may still show the second one, which waited until its timeout.
        asked_at = time.time()
        waiting.start()

        def third_waits(msgs):
            if not msgs:
                return False
            stamp = msgs[-1].header.stamp
            return (
                stamp.sec + 1e-9 * stamp.nanosec > asked_at
                and diagnostic_values(msgs[-1], "worker")["set_target_waiting"] == "True"
            )

        assert under_test.diagnostics.wait_for(third_waits, timeout=30.0), (
            "the third set_target never reached the node while the worker was busy"
        )
        reset = under_test.reset()
        assert reset.success and first.target_id in reset.message
        waiting.join(timeout=60.0)
        assert answers and not answers[0].success, answers
        assert "cancelled by reset" in answers[0].message
        ids = {m.id for m in under_test.detections.snapshot()}
        assert ids <= {first.target_id}, ids  # never the timed-out request's box

        # Ctrl-C under ros2 launch: two SIGINTs while the node is tracking.
        under_test.publish_frames(scene_frames[:2])
        assert under_test.set_target(scene_frames[1].box).success
        streamer.start()
        assert under_test.detections.wait_for(
            lambda msgs: any(m.id != first.target_id for m in msgs), timeout=20.0
        )
    finally:
        code = under_test.process.stop(interrupts=2)
        stop.set()
        if streamer.is_alive():
            streamer.join()
        under_test.driver.close()
    assert code == 0, under_test.process.output
    assert "Traceback" not in under_test.process.output, under_test.process.output
