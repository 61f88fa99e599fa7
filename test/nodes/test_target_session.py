"""TargetSession: each change of target is one transaction (no ROS involved)."""

from __future__ import annotations

import threading

import numpy as np

from ros_tracker.nodes.target_session import (
    CANCELLED,
    COMMITTED,
    InitRequest,
    TargetSession,
)
from ros_tracker.runtime.target_state import TargetState


def request(session: TargetSession, label: str = "") -> InitRequest:
    image = np.zeros((48, 64, 3), np.uint8)
    return InitRequest(None, image, (1.0, 2.0, 10.0, 10.0), label, session.new_target_id())


def tracking(session: TargetSession) -> InitRequest:
    first = request(session, "first")
    session.submit(first)
    assert session.take_pending() is first
    assert session.commit(first, "ok") is not None
    return first


def test_commit_makes_the_request_current_and_restarts_the_windows() -> None:
    session = TargetSession(lost_threshold=0.0, lost_frames=3)
    first = tracking(session)
    generation = session.generation
    for index in range(5):
        assert session.record(generation, 0.9, now_s=index * 0.1, latency_ms=400.0) is not None
    assert session.status(0.45).latency_ms == 400.0
    second = request(session)
    session.submit(second)
    assert session.take_pending() is second
    new_generation = session.commit(second, "ok")
    assert new_generation == generation + 1 and second.done.is_set()
    status = session.status(1.0)
    assert status.target_id == second.target_id != first.target_id
    assert status.fps == 0.0 and status.latency_ms == 0.0  # the old target's windows are gone
    # Frames tracked for the old target are not reported under the new one.
    assert session.record(generation, 0.9, now_s=1.0) is None


def test_catch_up_frames_count_but_stay_out_of_the_windows() -> None:
    session = TargetSession(lost_threshold=0.0, lost_frames=3)
    tracking(session)
    generation = session.generation
    for index in range(10):  # cached frames, old stamps, processed faster than real time
        session.record(generation, 0.9, now_s=index * 0.001, live=False, latency_ms=90_000.0)
    status = session.status(0.01)
    assert status.frames_processed == 10
    assert status.fps == 0.0 and status.latency_ms == 0.0
    session.record(generation, 0.9, now_s=0.5, latency_ms=30.0)
    session.record(generation, 0.9, now_s=0.6, latency_ms=40.0)
    status = session.status(0.6)
    assert status.latency_ms == 35.0 and abs(status.fps - 10.0) < 1e-6


def test_cancel_before_the_worker_took_it_leaves_the_current_target() -> None:
    session = TargetSession(lost_threshold=0.0, lost_frames=3)
    first = tracking(session)
    late = request(session)
    session.submit(late)
    cancelled, dropped = session.cancel(late, "timed out")
    assert cancelled and dropped == "" and late.outcome == CANCELLED
    assert session.take_pending() is None  # the worker never sees it
    assert session.status(0.0).target_id == first.target_id
    assert session.state == TargetState.TRACKING


def test_cancel_during_initialisation_drops_every_target_and_commit_refuses() -> None:
    session = TargetSession(lost_threshold=0.0, lost_frames=3)
    first = tracking(session)
    late = request(session)
    session.submit(late)
    assert session.take_pending() is late  # the tracker is now being re-initialised
    cancelled, dropped = session.cancel(late, "timed out")
    assert cancelled and dropped == first.target_id
    assert session.commit(late, "ok") is None  # the worker finishes too late
    status = session.status(0.0)
    assert status.state == TargetState.IDLE and status.target_id == ""


def test_commit_wins_over_a_cancel_that_comes_after_it() -> None:
    session = TargetSession(lost_threshold=0.0, lost_frames=3)
    first = request(session)
    session.submit(first)
    session.take_pending()
    assert session.commit(first, "ok") is not None
    assert session.cancel(first, "timed out") == (False, "")
    assert first.outcome == COMMITTED and session.status(0.0).target_id == first.target_id


def test_reset_cancels_waiting_and_initialising_requests() -> None:
    session = TargetSession(lost_threshold=0.0, lost_frames=3)
    first = tracking(session)
    initialising = request(session)
    session.submit(initialising)
    session.take_pending()
    waiting = request(session)
    session.submit(waiting)  # supersedes the one being initialised
    assert initialising.outcome == CANCELLED
    assert "superseded" in initialising.message
    assert session.waiting
    previous = session.reset()
    assert previous == ""  # the initialising request had already dropped first
    assert waiting.outcome == CANCELLED and "reset" in waiting.message
    assert waiting.done.is_set() and not session.waiting
    assert session.take_pending() is None and session.state == TargetState.IDLE
    assert first.outcome == COMMITTED


def test_reset_returns_the_dropped_target() -> None:
    session = TargetSession(lost_threshold=0.0, lost_frames=3)
    first = tracking(session)
    assert session.reset() == first.target_id
    assert session.reset() == ""


def _race(session: TargetSession, req: InitRequest) -> dict:
    results = {}
    threads = [
        threading.Thread(target=lambda: results.update(commit=session.commit(req, "ok"))),
        threading.Thread(target=lambda: results.update(cancel=session.cancel(req, "x")[0])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_one_of_commit_and_cancel_wins_under_contention() -> None:
    for _ in range(200):
        session = TargetSession(lost_threshold=0.0, lost_frames=3)
        req = request(session)
        session.submit(req)
        session.take_pending()
        results = _race(session, req)
        assert (results["commit"] is not None) != results["cancel"]
        assert (session.state == TargetState.TRACKING) == (results["commit"] is not None)
