"""Recent-window rates and latencies for status and diagnostics (no ROS)."""

from __future__ import annotations

import collections
import statistics
import threading
from typing import Deque


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

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
