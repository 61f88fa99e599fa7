"""TrackingWorker with the shipped ONNX model on ONNX Runtime: its guarded loop survives
errors raised anywhere in a step, counts them, and reports them in diagnostics as ERROR."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from test_tracker_diagnostics import snapshot

from ros_tracker.nodes.frame_cache import FrameCache
from ros_tracker.nodes.image_conversion import bgr_to_image_msg, image_msg_to_bgr
from ros_tracker.nodes.statistics import EventWindow
from ros_tracker.nodes.target_session import InitRequest, TargetSession
from ros_tracker.nodes.tracker_diagnostics import ERROR, OK, worker_status
from ros_tracker.nodes.tracking_worker import TrackingWorker
from ros_tracker.runtime.factory import build_tracker
from ros_tracker.sources.synthetic import SyntheticScene

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "models", "hcat_mobilenetv2")


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture(scope="module")
def tracker():
    if not os.path.isdir(SHIPPED):
        pytest.skip("the shipped ONNX pair is not in this checkout")
    built = build_tracker(SHIPPED, backend="onnxruntime", device="cpu", threads=1)
    yield built
    built.close()


def test_an_error_in_a_step_is_counted_and_the_worker_goes_on(tracker):
    frames = list(SyntheticScene(width=320, height=240, frames=12, seed=1))
    cache = FrameCache(10)
    session = TargetSession(lost_threshold=0.0, lost_frames=5)
    events = EventWindow(5.0)
    published = []
    calls = threading.Lock()

    def publish(frame, image, result, recorded):
        with calls:
            published.append(frame.seq)
            if len(published) == 1:
                raise RuntimeError("publisher gone")  # e.g. a publish racing shutdown

    worker = TrackingWorker(
        tracker=tracker,
        cache=cache,
        session=session,
        convert=image_msg_to_bgr,
        publish=publish,
        events=events,
        logger=logging.getLogger("test_worker"),
        warn=lambda kind, text: None,
        now_ns=time.monotonic_ns,
        resolution_change_frames=3,
    )
    first = cache.put(1, bgr_to_image_msg(frames[0].image))
    init = InitRequest(first, frames[0].image, frames[0].box, "", session.new_target_id())
    session.submit(init)
    worker.start()
    try:
        assert init.done.wait(30.0) and init.outcome == "committed", init.message
        for count, frame in enumerate(frames[1:5], start=1):
            cache.put(count + 1, bgr_to_image_msg(frame.image))  # one at a time: none dropped
            assert wait_until(lambda n=count: len(published) >= n, 30.0), published
        assert worker.alive
        assert events.total("worker_error") == 1
        failing = snapshot(worker_errors=1, worker_errors_total=1)
        report = worker_status("/tracker: ", "cpu", failing)
        assert report.level == ERROR and "1 worker error(s)" in report.message
    finally:
        assert worker.stop(timeout=10.0)
    assert not worker.alive
    # A stopped worker is not reported as dead: the node is shutting down.
    stopped = snapshot(worker_alive=False, worker_stopping=True)
    assert worker_status("/tracker: ", "cpu", stopped).level == OK
