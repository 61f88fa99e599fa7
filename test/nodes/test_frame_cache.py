"""FrameCache and the parameter checks: the node's plain-Python parts."""

from __future__ import annotations

import threading

import pytest

from ros_tracker.nodes import parameters
from ros_tracker.nodes.frame_cache import FrameCache


def test_newest_frame_wins_and_replaced_frames_count_as_dropped():
    cache = FrameCache(capacity=5)
    for stamp in (10, 20, 30):
        cache.put(stamp, f"msg{stamp}")
    frame = cache.take_newest(timeout=0.0)
    assert frame.stamp_ns == 30 and frame.msg == "msg30"
    assert cache.dropped == 2 and cache.received == 3
    assert cache.take_newest(timeout=0.0) is None


def test_frames_replaced_while_idle_are_not_drops():
    cache = FrameCache(capacity=5)
    cache.put(1, "a", count_drop=False)
    cache.put(2, "b", count_drop=False)
    assert cache.dropped == 0


def test_history_is_bounded_and_found_by_stamp():
    cache = FrameCache(capacity=3)
    frames = [cache.put(stamp, stamp) for stamp in (1, 2, 3, 4)]
    assert cache.find(1) is None  # evicted
    assert cache.find(3).seq == frames[2].seq
    assert cache.oldest_stamp() == 2
    assert [f.stamp_ns for f in cache.newer_than(frames[1].seq)] == [3, 4]


def test_take_newest_waits_for_a_frame():
    cache = FrameCache(capacity=2)
    got = []
    waiter = threading.Thread(target=lambda: got.append(cache.take_newest(timeout=5.0)))
    waiter.start()
    cache.put(7, "late")
    waiter.join(timeout=5.0)
    assert got and got[0].stamp_ns == 7


def test_caught_up_frames_are_not_processed_twice():
    cache = FrameCache(capacity=4)
    first = cache.put(1, "a")
    second = cache.put(2, "b")
    cache.clear_pending_up_to(second.seq)
    assert cache.take_newest(timeout=0.0) is None
    third = cache.put(3, "c")
    cache.clear_pending_up_to(first.seq)
    assert cache.take_newest(timeout=0.0).seq == third.seq


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        FrameCache(capacity=0)


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("backend", "magic", "must be one of"),
        ("lost_threshold", 1.5, "must be in [0, 1]"),
        ("frame_cache_size", 0, "must be in [1, 600]"),
        ("model", "  ", "must name a zoo model"),
        ("value_range", [5.0, 1.0], "low < high"),
    ],
)
def test_invalid_parameter_values_are_explained(name, value, fragment):
    assert fragment in parameters.check_value(name, value)


@pytest.mark.parametrize(
    "name, value",
    [("backend", "onnxruntime"), ("lost_threshold", 0.0), ("value_range", [0.0, 0.0])],
)
def test_valid_parameter_values_pass(name, value):
    assert parameters.check_value(name, value) is None


def test_every_parameter_default_is_valid():
    for spec in parameters.SPECS:
        assert parameters.check_value(spec.name, spec.default) is None, spec.name
