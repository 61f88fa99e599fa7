"""The tracker node's worker thread: the one thread that runs the tracker.

It takes a pending SetTarget first (initialise on the cached frame, then catch up through
the newer cached frames), otherwise the newest frame, tracks it and hands the result to the
node's publishing callback. Latency never grows with a queue: frames replaced before the
worker took them count as dropped (see FrameCache).

Its whole loop is guarded: whatever one step raises (a publish while the node shuts down,
drawing, a bug) is logged with its traceback, counted as a worker error and reported in
diagnostics as ERROR, and the loop goes on. ``alive`` and ``busy_for`` let the node's
diagnostics tell a dead or stuck worker.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable, Optional, Tuple

import numpy as np

from ros_tracker.nodes.frame_cache import CachedFrame, FrameCache
from ros_tracker.nodes.image_conversion import ImageConversionError
from ros_tracker.nodes.statistics import EventWindow
from ros_tracker.nodes.target_session import InitRequest, Recorded, TargetSession

# After an unexpected error the loop pauses this long, so a bug that repeats on every step
# cannot spin a core.
ERROR_BACKOFF_S = 0.1


class ResolutionGuard:
    """Frames of another resolution than the stream's are skipped until ``needed`` of them
    came in a row; then the new resolution is adopted (and the caller drops the target)."""

    def __init__(self, needed: int) -> None:
        self.needed = int(needed)
        self.size: Optional[Tuple[int, int]] = None
        self.streak = 0

    def check(self, size: Tuple[int, int]) -> str:
        """ "ok", "skip" (a frame of another resolution) or "adopt" (it lasted)."""
        if self.size is None or size == self.size:
            self.size, self.streak = size, 0
            return "ok"
        self.streak += 1
        if self.streak < self.needed:
            return "skip"
        self.size, self.streak = size, 0
        return "adopt"

    def start(self, size: Tuple[int, int]) -> None:
        """A target was set on an image of ``size``: that is the stream's resolution."""
        self.size, self.streak = size, 0


class TrackingWorker:
    """Runs the tracker on its own thread (see the module docstring)."""

    def __init__(
        self,
        tracker: Any,
        cache: FrameCache,
        session: TargetSession,
        convert: Callable[[Any], np.ndarray],
        publish: Callable[[CachedFrame, np.ndarray, Any, Recorded], None],
        events: EventWindow,
        logger: Any,
        warn: Callable[[str, str], None],
        now_ns: Callable[[], int],
        resolution_change_frames: int,
        context_ok: Callable[[], bool] = lambda: True,
    ) -> None:
        self._tracker = tracker
        self._cache = cache
        self._session = session
        self._convert = convert
        self._publish = publish
        self._events = events
        self._logger = logger
        self._warn = warn
        self._now_ns = now_ns
        self._context_ok = context_ok
        self._resolution = ResolutionGuard(resolution_change_frames)
        self._stop = threading.Event()
        self._step_started: Optional[float] = None
        self._last_error = 0.0
        self._thread = threading.Thread(target=self._run, name="tracker-worker", daemon=True)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the loop to end and wait for it; False if it was still busy after ``timeout``."""
        self._stop.set()
        self._cache.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def busy_for(self, now: float) -> float:
        """Seconds the current step (initialisation or one frame) has been running."""
        started = self._step_started
        return now - started if started is not None else 0.0

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as error:  # the guard: nothing ends the loop but stop()
                self._step_started = None
                if self._stop.is_set() or not self._context_ok():
                    break  # a publish racing the shutdown (Ctrl-C shut the context down)
                self._on_error(error)
                self._stop.wait(ERROR_BACKOFF_S)

    def _on_error(self, error: Exception) -> None:
        now = time.monotonic()
        self._events.add("worker_error", now)
        total = self._events.total("worker_error")
        if now - self._last_error >= 2.0:
            self._last_error = now
            trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            self._logger.error(
                f"worker error ({total} so far), the worker goes on: {error!r}\n{trace.rstrip()}"
            )

    def _step(self) -> None:
        request = self._session.take_pending()
        if request is not None:
            self._step_started = time.monotonic()
            self._initialize(request)
            self._step_started = None
            return
        frame = self._cache.take_newest(timeout=0.1)
        if frame is None or not self._session.active:
            return
        self._step_started = time.monotonic()
        self._process(frame, self._session.generation, live=True)
        self._step_started = None

    def _initialize(self, request: InitRequest) -> None:
        try:
            self._tracker.initialize(request.image, request.box)
        except Exception as error:  # a runtime failure is an answer, not a crash
            dropped = self._session.fail(request, f"tracker initialisation failed: {error}")
            if dropped:
                self._logger.warning(f"target {dropped} dropped: the tracker could not be set up")
            return
        newer = self._cache.newer_than(request.frame.seq)
        message = f"catching up through {len(newer)} newer cached frame(s)"
        size = (int(request.image.shape[1]), int(request.image.shape[0]))
        generation = self._session.commit(request, message)
        if generation is None:
            return  # cancelled meanwhile; the session dropped every target
        self._resolution.start(size)
        for frame in newer:
            if self._stop.is_set() or self._session.generation != generation:
                break  # reset or retargeted during the catch-up
            self._process(frame, generation, live=False)
        if newer:
            self._cache.clear_pending_up_to(newer[-1].seq)

    def _process(self, frame: CachedFrame, generation: int, live: bool) -> None:
        try:
            image = self._convert(frame.msg)
        except ImageConversionError as error:
            self._events.add("malformed", time.monotonic())
            total = self._events.total("malformed")
            self._warn("malformed", f"skipped a malformed image ({total} so far): {error}")
            return
        if not self._accept_size(image):
            return
        try:
            result = self._tracker.track(image)
        except Exception as error:  # one bad frame: report, count, go on
            self._events.add("tracking_error", time.monotonic())
            total = self._events.total("tracking_error")
            self._warn("tracking", f"tracking failed on one frame ({total} so far): {error}")
            return
        latency_ms = None
        if live and frame.stamp_ns:
            latency_ms = (self._now_ns() - frame.stamp_ns) / 1e6
        recorded = self._session.record(
            generation, result.score, time.monotonic(), live=live, latency_ms=latency_ms
        )
        if recorded is not None:
            self._events.add("processed", time.monotonic())
            self._publish(frame, image, result, recorded)

    def _accept_size(self, image: np.ndarray) -> bool:
        size = (int(image.shape[1]), int(image.shape[0]))
        expected = self._resolution.size
        verdict = self._resolution.check(size)
        if verdict == "ok":
            return True
        self._events.add("malformed", time.monotonic())
        if verdict == "skip":
            assert expected is not None
            self._warn(
                "resolution",
                f"image resolution changed from {expected[0]}x{expected[1]} to "
                f"{size[0]}x{size[1]}: frame skipped "
                f"({self._resolution.streak}/{self._resolution.needed} before adopting it)",
            )
            return False
        dropped = self._session.reset("cancelled: the image resolution changed")
        self._logger.warning(
            f"adopted the new resolution {size[0]}x{size[1]}; target {dropped} dropped "
            "(its box belongs to the old resolution): call set_target again"
        )
        return False
