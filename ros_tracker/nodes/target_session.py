"""The tracked target as one object that the tracker node's threads share.

Three kinds of thread touch the target: the service threads (set_target, reset), the worker
(which initialises the tracker and tracks) and the timers (status, diagnostics). TargetSession
holds what they share behind one lock and makes each change one method, so no thread sees
half of a change:

* a SetTarget becomes an InitRequest. It stays pending until the worker takes it; from then
  on exactly one of ``commit`` (the worker, once ``Tracker.initialize`` returned), ``fail``
  (initialisation raised) and ``cancel`` (a timeout, a reset, a newer request) settles it.
  A request cancelled after the worker took it leaves no target at all: the tracker was
  being re-initialised, so the previous target is gone as well, and the session says so.
  It never reports the new box under the previous target's id.
* every change of target increments ``generation``; a frame the worker tracked under an
  older generation is not reported.
* the rate and latency windows belong to one target and start again with each.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from ros_tracker.nodes.statistics import RecentMedian, RecentRate
from ros_tracker.runtime.target_state import TargetState, TargetStateMachine

Box = Tuple[float, float, float, float]

PENDING = "pending"  # waiting for the worker
INITIALISING = "initialising"  # the worker is initialising the tracker on it
COMMITTED = "committed"
FAILED = "failed"
CANCELLED = "cancelled"


@dataclass
class InitRequest:
    """A validated SetTarget; the service thread waits on ``done`` for its outcome."""

    frame: Any  # the CachedFrame the box was drawn on
    image: Any  # that frame as a BGR array
    box: Box
    label: str
    target_id: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = PENDING
    message: str = ""

    @property
    def settled(self) -> bool:
        return self.outcome in (COMMITTED, FAILED, CANCELLED)


@dataclass(frozen=True)
class Recorded:
    """What the worker reports for one tracked frame of the current target."""

    state: TargetState
    target_id: str
    label: str


@dataclass(frozen=True)
class SessionStatus:
    state: TargetState
    target_id: str
    score: float
    frames_processed: int
    fps: float
    latency_ms: float


class TargetSession:
    """The current target, the pending SetTarget and the per-target statistics."""

    def __init__(self, lost_threshold: float, lost_frames: int) -> None:
        self._lock = threading.Lock()
        self._machine = TargetStateMachine(lost_threshold=lost_threshold, lost_frames=lost_frames)
        self._generation = 0
        self._target_id = ""
        self._label = ""
        self._score = 0.0
        self._targets_set = 0
        self._processed = 0
        self._pending: Optional[InitRequest] = None  # waiting for the worker
        self._initialising: Optional[InitRequest] = None  # taken by the worker
        self._rate = RecentRate()
        self._latency = RecentMedian()

    # ------------------------------------------------------------------ settings
    def configure(
        self, lost_threshold: Optional[float] = None, lost_frames: Optional[int] = None
    ) -> None:
        with self._lock:
            if lost_threshold is not None:
                self._machine.lost_threshold = float(lost_threshold)
            if lost_frames is not None:
                self._machine.lost_frames = int(lost_frames)

    # ------------------------------------------------------------------ SetTarget
    def new_target_id(self) -> str:
        with self._lock:
            self._targets_set += 1
            return f"target_{self._targets_set}"

    def submit(self, request: InitRequest) -> None:
        """Queue ``request`` for the worker; any earlier unsettled request is superseded."""
        with self._lock:
            self._cancel_unsettled_locked("superseded by a newer set_target")
            self._pending = request

    def take_pending(self) -> Optional[InitRequest]:
        """The worker's side: the request to initialise on now, if any."""
        with self._lock:
            request, self._pending = self._pending, None
            if request is None or request.outcome != PENDING:
                return None
            request.outcome = INITIALISING
            self._initialising = request
            return request

    def commit(self, request: InitRequest, message: str) -> Optional[int]:
        """The tracker holds ``request``'s target: make it current and return its generation;
        None if the request was cancelled meanwhile."""
        with self._lock:
            if request.outcome != INITIALISING:
                return None
            self._initialising = None
            request.outcome = COMMITTED
            request.message = message
            self._generation += 1
            self._machine.start()
            self._target_id = request.target_id
            self._label = request.label
            self._score = 1.0
            self._rate.clear()
            self._latency.clear()
            request.done.set()
            return self._generation

    def fail(self, request: InitRequest, message: str) -> str:
        """Initialisation raised. The tracker's state is unknown: any previous target is
        dropped too; returns its id ("" if there was none)."""
        with self._lock:
            if request.outcome != INITIALISING:
                return ""
            self._initialising = None
            request.outcome = FAILED
            request.message = message
            request.done.set()
            return self._drop_locked()

    def cancel(self, request: InitRequest, reason: str) -> Tuple[bool, str]:
        """Cancel ``request`` unless it already settled.

        Returns (cancelled, dropped): ``dropped`` is the id of the previous target when the
        worker had already started re-initialising the tracker for ``request``.
        """
        with self._lock:
            if request.settled:
                return False, ""
            return True, self._cancel_locked(request, reason)

    def _cancel_locked(self, request: InitRequest, reason: str) -> str:
        dropped = ""
        if request.outcome == INITIALISING:
            dropped = self._drop_locked()
        request.outcome = CANCELLED
        request.message = reason
        request.done.set()
        if self._pending is request:
            self._pending = None
        if self._initialising is request:
            self._initialising = None
        return dropped

    def _cancel_unsettled_locked(self, reason: str) -> None:
        for request in (self._pending, self._initialising):
            if request is not None and not request.settled:
                self._cancel_locked(request, reason)

    # ------------------------------------------------------------------ dropping
    def reset(self, reason: str = "cancelled by reset") -> str:
        """Drop the target and any pending SetTarget; returns the dropped target's id."""
        with self._lock:
            previous = self._target_id
            self._cancel_unsettled_locked(reason)
            self._drop_locked()
            return previous

    def _drop_locked(self) -> str:
        previous = self._target_id
        self._generation += 1
        self._machine.reset()
        self._target_id = ""
        self._label = ""
        self._score = 0.0
        return previous

    # ------------------------------------------------------------------ tracking
    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    @property
    def waiting(self) -> bool:
        """A SetTarget waits for the worker or is being initialised."""
        with self._lock:
            return self._pending is not None or self._initialising is not None

    @property
    def active(self) -> bool:
        """A target is set (TRACKING or LOST)."""
        with self._lock:
            return self._machine.state != TargetState.IDLE

    @property
    def state(self) -> TargetState:
        with self._lock:
            return self._machine.state

    def record(
        self,
        generation: int,
        score: float,
        now_s: float,
        live: bool = True,
        latency_ms: Optional[float] = None,
    ) -> Optional[Recorded]:
        """Account one tracked frame of target ``generation``; None if that target is gone.

        Frames that are not ``live`` (the cached frames a SetTarget catches up through, whose
        stamps are old by design) count as processed but stay out of the rate and latency
        windows.
        """
        with self._lock:
            if generation != self._generation or self._machine.state == TargetState.IDLE:
                return None
            state = self._machine.update(score)
            self._score = float(score)
            self._processed += 1
            if live:
                self._rate.tick(now_s)
                if latency_ms is not None:
                    self._latency.add(latency_ms)
            return Recorded(state, self._target_id, self._label)

    def status(self, now_s: float) -> SessionStatus:
        with self._lock:
            state = self._machine.state
            return SessionStatus(
                state=state,
                target_id=self._target_id,
                score=self._score if state != TargetState.IDLE else 0.0,
                frames_processed=self._processed,
                fps=self._rate.rate(now_s) if state != TargetState.IDLE else 0.0,
                latency_ms=self._latency.median() if state != TargetState.IDLE else 0.0,
            )
