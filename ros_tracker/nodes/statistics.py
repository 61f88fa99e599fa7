"""Recent-window rates and latencies for status and diagnostics (no ROS)."""

from __future__ import annotations

import collections
import statistics
import threading
from typing import Deque, Dict, Optional


class RecentRate:
    """Events per second over the last ``window`` events (processed frames)."""

    def __init__(self, window: int = 30) -> None:
        self._times: Deque[float] = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)

    def rate(self, now: float, stale_after: float = 2.0) -> float:
        """Rate of the recent window; 0 once no event came for ``stale_after`` seconds."""
        with self._lock:
            if len(self._times) < 2 or now - self._times[-1] > stale_after:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


class RecentMedian:
    """Median of the last ``window`` samples (latencies in milliseconds)."""

    def __init__(self, window: int = 30) -> None:
        self._values: Deque[float] = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def median(self) -> float:
        with self._lock:
            return statistics.median(self._values) if self._values else 0.0

    def maximum(self) -> float:
        with self._lock:
            return max(self._values) if self._values else 0.0

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class EventWindow:
    """Counts of named events over the last ``window_s`` seconds (diagnostics: a problem
    shows while it happens and clears once it stops, unlike a cumulative count)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = float(window_s)
        self._events: Dict[str, Deque[float]] = collections.defaultdict(collections.deque)
        self._totals: Dict[str, int] = collections.defaultdict(int)
        self._last: Dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, now: float) -> None:
        with self._lock:
            self._events[kind].append(now)
            self._totals[kind] += 1
            self._last[kind] = now
            self._expire(kind, now)

    def _expire(self, kind: str, now: float) -> None:
        times = self._events[kind]
        while times and now - times[0] > self.window_s:
            times.popleft()

    def count(self, kind: str, now: float) -> int:
        """Events of ``kind`` within the window."""
        with self._lock:
            self._expire(kind, now)
            return len(self._events[kind])

    def rate(self, kind: str, now: float) -> float:
        """Events per second within the window."""
        return self.count(kind, now) / self.window_s

    def total(self, kind: str) -> int:
        with self._lock:
            return self._totals[kind]

    def last(self, kind: str) -> Optional[float]:
        """When ``kind`` last happened (None: never)."""
        with self._lock:
            return self._last.get(kind)
