"""Diagnostics levels and texts, from snapshots of what the node measured (no ROS graph)."""

from __future__ import annotations

import dataclasses

from std_msgs.msg import Header

from ros_tracker.nodes.statistics import EventWindow
from ros_tracker.nodes.tracker_diagnostics import (
    ERROR,
    OK,
    WARN,
    DiagnosticsSnapshot,
    diagnostics_array,
)

HEALTHY = DiagnosticsSnapshot(
    window_s=5.0,
    topic="/drone1/camera/image_raw",
    received_rate=30.0,
    expected_rate=0.0,
    since_last_image_s=0.03,
    stamp_age_ms=12.0,
    stamp_age_max_ms=20.0,
    malformed=0,
    malformed_total=3,
    dropped=4,
    dropped_total=40,
    received_total=900,
    state="TRACKING",
    target_id="target_1",
    processed_rate=25.0,
    processed_total=700,
    fps=25.0,
    latency_ms=35.0,
    tracking_errors=0,
    tracking_errors_total=1,
    worker_alive=True,
    worker_stopping=False,
    worker_busy_s=0.02,
    worker_errors=0,
    worker_errors_total=0,
    set_target_waiting=False,
    backend="onnxruntime-cpu",
    model="hcat_mobilenetv2",
)


def snapshot(**changes) -> DiagnosticsSnapshot:
    return dataclasses.replace(HEALTHY, **changes)


def statuses(snap: DiagnosticsSnapshot) -> dict:
    array = diagnostics_array(Header(), "/drone1/tracker", "cuda:0", snap)
    return {status.name.split(": ")[1]: status for status in array.status}


def test_healthy_node_is_ok_everywhere_with_the_device_as_hardware_id():
    found = statuses(HEALTHY)
    assert set(found) == {"images", "tracking", "worker"}
    for status in found.values():
        assert status.level == OK, status
        assert status.hardware_id == "cuda:0"
        assert status.name.startswith("/drone1/tracker: ")
    values = {kv.key: kv.value for kv in found["tracking"].values}
    assert values["frames_processed"] == "700" and values["model"] == "hcat_mobilenetv2"
    assert found["tracking"].message == "tracking at 25.0 fps"


def test_problems_are_reported_while_they_last_then_clear():
    noisy = statuses(snapshot(malformed=2, tracking_errors=1))
    assert noisy["images"].level == WARN and "2 malformed image(s)" in noisy["images"].message
    assert noisy["tracking"].level == WARN and "1 tracking error(s)" in noisy["tracking"].message
    # The totals stay in the values, but with nothing new in the window the WARN is gone.
    calm = statuses(snapshot(malformed=0, malformed_total=5, tracking_errors=0))
    assert calm["images"].level == OK and calm["tracking"].level == OK


def test_missing_images_and_old_stamps_warn():
    never = statuses(snapshot(since_last_image_s=None, received_rate=0.0))["images"]
    assert never.level == WARN and "no images received yet on /drone1/camera" in never.message
    quiet = statuses(snapshot(since_last_image_s=12.4, received_rate=0.0))["images"]
    assert quiet.level == WARN and "no images for 12 s" in quiet.message
    late = statuses(snapshot(stamp_age_ms=2500.0))["images"]
    assert late.level == WARN and "2.5 s behind" in late.message


def test_image_rate_below_the_expected_one_warns():
    assert statuses(snapshot(expected_rate=30.0, received_rate=28.0))["images"].level == OK
    slow = statuses(snapshot(expected_rate=30.0, received_rate=14.2))["images"]
    assert slow.level == WARN and "images at 14.2 Hz, expected 30 Hz" in slow.message


def test_lost_target_warns_and_worker_trouble_is_an_error():
    assert statuses(snapshot(state="LOST"))["tracking"].level == WARN
    dead = statuses(snapshot(worker_alive=False))["worker"]
    assert dead.level == ERROR and "not running" in dead.message
    failing = statuses(snapshot(worker_errors=3))["worker"]
    assert failing.level == ERROR and "3 worker error(s)" in failing.message
    stuck = statuses(snapshot(worker_busy_s=42.0))["worker"]
    assert stuck.level == WARN and "42 s" in stuck.message


def test_event_window_counts_recent_events_only():
    window = EventWindow(window_s=5.0)
    for t in (0.0, 1.0, 2.0):
        window.add("malformed", t)
    assert window.count("malformed", 2.5) == 3
    assert window.count("malformed", 6.5) == 1  # 0.0 and 1.0 left the window
    assert window.count("malformed", 8.0) == 0
    assert window.total("malformed") == 3 and window.last("malformed") == 2.0
    assert window.rate("received", 8.0) == 0.0 and window.last("received") is None
