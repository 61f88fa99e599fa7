"""Newest-frame slot and stamped history between the image callback and the worker thread.

The image callback only stores the message (``put``); the worker takes the newest one
(``take_newest``) so latency never grows with a queue: a frame replaced before the worker
took it is counted as dropped. The history keeps the last ``capacity`` frames by stamp so a
SetTarget drawn on an older image can initialise on exactly that image and then catch up
through the newer ones. Messages are stored as received; conversion happens in the worker.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any, Deque, List, Optional


@dataclass(frozen=True)
class CachedFrame:
    seq: int  # arrival order, from 1
    stamp_ns: int  # header stamp in nanoseconds
    msg: Any  # sensor_msgs/Image or CompressedImage


class FrameCache:
    """Thread-safe newest-frame slot plus a bounded, stamp-indexed history."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"frame cache capacity must be at least 1, got {capacity}")
        self._history: Deque[CachedFrame] = collections.deque(maxlen=capacity)
        self._newest: Optional[CachedFrame] = None
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._seq = 0
        self.received = 0
        self.dropped = 0

    def put(self, stamp_ns: int, msg: Any, count_drop: bool = True) -> CachedFrame:
        """Store a new frame; an untaken previous frame counts as dropped if ``count_drop``."""
        with self._lock:
            self._seq += 1
            self.received += 1
            frame = CachedFrame(self._seq, int(stamp_ns), msg)
            if self._newest is not None and count_drop:
                self.dropped += 1
            self._newest = frame
            self._history.append(frame)
            self._arrived.notify_all()
            return frame

    def take_newest(self, timeout: Optional[float] = None) -> Optional[CachedFrame]:
        """The newest untaken frame, waiting up to ``timeout`` seconds; None if none came."""
        with self._lock:
            if self._newest is None:
                self._arrived.wait(timeout)
            frame, self._newest = self._newest, None
            return frame

    def discard_pending(self) -> None:
        """Forget the untaken frame without counting it (e.g. while no target is set)."""
        with self._lock:
            self._newest = None

    def wake(self) -> None:
        """Wake a waiting take_newest (shutdown, a new request for the worker)."""
        with self._lock:
            self._arrived.notify_all()

    def latest(self) -> Optional[CachedFrame]:
        with self._lock:
            return self._history[-1] if self._history else None

    def find(self, stamp_ns: int) -> Optional[CachedFrame]:
        """The most recent cached frame whose stamp equals ``stamp_ns``."""
        with self._lock:
            for frame in reversed(self._history):
                if frame.stamp_ns == stamp_ns:
                    return frame
        return None

    def oldest_stamp(self) -> Optional[int]:
        with self._lock:
            return self._history[0].stamp_ns if self._history else None

    def newer_than(self, seq: int) -> List[CachedFrame]:
        """Cached frames that arrived after ``seq``, oldest first."""
        with self._lock:
            return [frame for frame in self._history if frame.seq > seq]

    def clear_pending_up_to(self, seq: int) -> None:
        """Drop the untaken frame if it is not newer than ``seq`` (already caught up on)."""
        with self._lock:
            if self._newest is not None and self._newest.seq <= seq:
                self._newest = None
