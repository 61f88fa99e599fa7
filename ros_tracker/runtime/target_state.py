"""IDLE / TRACKING / LOST: whether the tracker's estimate should be believed.

A tracker always returns a box; the confidence says whether it is still on the target. One
weak frame (blur, partial occlusion) should not drop the target, so LOST needs the
confidence to stay under ``lost_threshold`` for ``lost_frames`` consecutive frames. The
state comes back to TRACKING once the confidence is above the threshold again for
``recover_frames`` consecutive frames (1 by default).

The numeric values match ros_tracker_interfaces/msg/TrackerStatus (IDLE=0, TRACKING=1, LOST=2).
"""

from __future__ import annotations

import enum
import math


class TargetState(enum.IntEnum):
    IDLE = 0
    TRACKING = 1
    LOST = 2


class TargetStateMachine:
    """Plain-Python state machine fed with one confidence per processed frame."""

    def __init__(
        self, lost_threshold: float = 0.3, lost_frames: int = 3, recover_frames: int = 1
    ) -> None:
        if not 0.0 <= lost_threshold <= 1.0:
            raise ValueError(f"lost_threshold must be in [0, 1], got {lost_threshold}")
        if lost_frames < 1 or recover_frames < 1:
            raise ValueError("lost_frames and recover_frames must be at least 1")
        self.lost_threshold = float(lost_threshold)
        self.lost_frames = int(lost_frames)
        self.recover_frames = int(recover_frames)
        self._state = TargetState.IDLE
        self._low_streak = 0
        self._high_streak = 0

    @property
    def state(self) -> TargetState:
        return self._state

    @property
    def low_streak(self) -> int:
        """Consecutive frames so far with confidence under the threshold."""
        return self._low_streak

    def start(self) -> TargetState:
        """A target was set: TRACKING, whatever the previous state."""
        self._state = TargetState.TRACKING
        self._low_streak = 0
        self._high_streak = 0
        return self._state

    def reset(self) -> TargetState:
        """Target dropped: IDLE until the next start()."""
        self._state = TargetState.IDLE
        self._low_streak = 0
        self._high_streak = 0
        return self._state

    def update(self, confidence: float) -> TargetState:
        """Feed one frame's confidence (NaN counts as no confidence); returns the new state."""
        if self._state == TargetState.IDLE:
            return self._state
        confident = not math.isnan(confidence) and confidence >= self.lost_threshold
        if confident:
            self._low_streak = 0
            self._high_streak += 1
            if self._state == TargetState.LOST and self._high_streak >= self.recover_frames:
                self._state = TargetState.TRACKING
        else:
            self._high_streak = 0
            self._low_streak += 1
            if self._state == TargetState.TRACKING and self._low_streak >= self.lost_frames:
                self._state = TargetState.LOST
        return self._state
