from __future__ import annotations

import math

import pytest

from ros_tracker.runtime.target_state import TargetState, TargetStateMachine


def test_values_match_the_status_message() -> None:
    assert (TargetState.IDLE, TargetState.TRACKING, TargetState.LOST) == (0, 1, 2)


def test_idle_until_started_and_ignores_scores() -> None:
    machine = TargetStateMachine(lost_threshold=0.5, lost_frames=2)
    assert machine.update(0.0) == TargetState.IDLE
    assert machine.update(0.9) == TargetState.IDLE
    assert machine.start() == TargetState.TRACKING


def test_lost_only_after_n_consecutive_low_frames() -> None:
    machine = TargetStateMachine(lost_threshold=0.5, lost_frames=3)
    machine.start()
    assert [machine.update(s) for s in (0.1, 0.2)] == [TargetState.TRACKING] * 2
    assert machine.update(0.9) == TargetState.TRACKING  # streak broken
    assert [machine.update(s) for s in (0.1, 0.1)] == [TargetState.TRACKING] * 2
    assert machine.update(0.49) == TargetState.LOST
    assert machine.low_streak == 3


def test_recovers_when_confidence_returns() -> None:
    machine = TargetStateMachine(lost_threshold=0.5, lost_frames=1)
    machine.start()
    assert machine.update(0.2) == TargetState.LOST
    assert machine.update(0.3) == TargetState.LOST
    assert machine.update(0.5) == TargetState.TRACKING  # at the threshold counts as confident


def test_recover_frames_requires_a_streak() -> None:
    machine = TargetStateMachine(lost_threshold=0.5, lost_frames=1, recover_frames=2)
    machine.start()
    machine.update(0.0)
    assert machine.update(0.8) == TargetState.LOST
    assert machine.update(0.1) == TargetState.LOST
    assert machine.update(0.8) == TargetState.LOST
    assert machine.update(0.8) == TargetState.TRACKING


def test_nan_counts_as_low_confidence() -> None:
    machine = TargetStateMachine(lost_threshold=0.1, lost_frames=2)
    machine.start()
    machine.update(math.nan)
    assert machine.update(math.nan) == TargetState.LOST


def test_reset_goes_idle_and_clears_streaks() -> None:
    machine = TargetStateMachine(lost_threshold=0.5, lost_frames=2)
    machine.start()
    machine.update(0.0)
    assert machine.reset() == TargetState.IDLE
    assert machine.low_streak == 0
    machine.start()
    assert machine.update(0.0) == TargetState.TRACKING  # the old low frame was forgotten


@pytest.mark.parametrize(
    "kwargs", [dict(lost_threshold=1.5), dict(lost_frames=0), dict(recover_frames=0)]
)
def test_invalid_settings_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        TargetStateMachine(**kwargs)
