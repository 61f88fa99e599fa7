"""The tracker node's /diagnostics, organised the way diagnostic_updater organises them.

One DiagnosticStatus per concern, named ``<node>: <concern>``, each with its own level:

* ``images``: input frequency (against ``expected_image_rate`` when set) and stamp age over
  the recent window, "no images for N s", malformed and dropped frames in the window;
* ``tracking``: state, processed rate, latency, tracking errors in the window;
* ``worker``: the worker thread is alive, not stuck on one step, and raised no error
  in the window (any error there is a bug: ERROR).

Problems are counted per window (``EventWindow``), not since start-up, so a WARN clears once
the problem stops; the totals are listed as values beside them. ``hardware_id`` is the
inference device. The node only gathers a ``DiagnosticsSnapshot``; this module decides the
levels and texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR

NO_IMAGES_WARN_S = 3.0  # no image for this long: WARN
RATE_TOLERANCE = 0.1  # below (1 - this) x the expected image rate: WARN
STAMP_AGE_WARN_MS = 1000.0  # images this much older than the node's clock: WARN
BUSY_WARN_S = 10.0  # one worker step (initialisation or a frame) running this long: WARN


@dataclass
class DiagnosticsSnapshot:
    """What the node measured, at one moment (rates and counts over ``window_s``)."""

    window_s: float
    topic: str
    received_rate: float
    expected_rate: float  # 0: not checked
    since_last_image_s: Optional[float]  # None: no image yet
    stamp_age_ms: float  # median over recent images
    stamp_age_max_ms: float
    malformed: int
    malformed_total: int
    dropped: int
    dropped_total: int
    received_total: int
    state: str  # IDLE | TRACKING | LOST
    target_id: str
    processed_rate: float
    processed_total: int
    fps: float
    latency_ms: float
    tracking_errors: int
    tracking_errors_total: int
    worker_alive: bool
    worker_stopping: bool
    worker_busy_s: float
    worker_errors: int
    worker_errors_total: int
    set_target_waiting: bool
    backend: str
    model: str


def _status(name: str, hardware_id: str, values: Dict[str, object]) -> DiagnosticStatus:
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
    return status


def _settle(status: DiagnosticStatus, problems: List[tuple], fine: str) -> DiagnosticStatus:
    """Level = the worst problem's; message = every problem's text, or ``fine``."""
    if problems:
        status.level = max(level for level, _ in problems)
        status.message = "; ".join(text for _, text in problems)
    else:
        status.level, status.message = OK, fine
    return status


def images_status(prefix: str, hardware_id: str, snap: DiagnosticsSnapshot) -> DiagnosticStatus:
    window = f"in the last {snap.window_s:g} s"
    since = snap.since_last_image_s
    status = _status(
        prefix + "images",
        hardware_id,
        {
            "topic": snap.topic,
            "frequency_hz": f"{snap.received_rate:.2f}",
            "expected_frequency_hz": f"{snap.expected_rate:g}" if snap.expected_rate else "-",
            "seconds_since_last_image": "never" if since is None else f"{since:.2f}",
            "stamp_age_median_ms": f"{snap.stamp_age_ms:.1f}",
            "stamp_age_max_ms": f"{snap.stamp_age_max_ms:.1f}",
            "malformed_in_window": snap.malformed,
            "dropped_in_window": snap.dropped,
            "frames_received": snap.received_total,
            "frames_malformed": snap.malformed_total,
            "frames_dropped": snap.dropped_total,
        },
    )
    problems = []
    if since is None:
        problems.append((WARN, f"no images received yet on {snap.topic}"))
    elif since > NO_IMAGES_WARN_S:
        problems.append((WARN, f"no images for {since:.0f} s on {snap.topic}"))
    elif snap.expected_rate and snap.received_rate < (1.0 - RATE_TOLERANCE) * snap.expected_rate:
        problems.append(
            (WARN, f"images at {snap.received_rate:.1f} Hz, expected {snap.expected_rate:g} Hz")
        )
    if since is not None and since <= NO_IMAGES_WARN_S and snap.stamp_age_ms > STAMP_AGE_WARN_MS:
        problems.append(
            (WARN, f"image stamps {snap.stamp_age_ms / 1000.0:.1f} s behind the node's clock")
        )
    if snap.malformed:
        problems.append((WARN, f"{snap.malformed} malformed image(s) {window}"))
    return _settle(status, problems, f"{snap.received_rate:.1f} Hz")


def tracking_status(prefix: str, hardware_id: str, snap: DiagnosticsSnapshot) -> DiagnosticStatus:
    status = _status(
        prefix + "tracking",
        hardware_id,
        {
            "state": snap.state,
            "target_id": snap.target_id,
            "fps": f"{snap.fps:.2f}",
            "processed_hz": f"{snap.processed_rate:.2f}",
            "latency_ms": f"{snap.latency_ms:.1f}",
            "tracking_errors_in_window": snap.tracking_errors,
            "frames_processed": snap.processed_total,
            "frames_dropped": snap.dropped_total,
            "tracking_errors": snap.tracking_errors_total,
            "backend": snap.backend,
            "model": snap.model,
        },
    )
    problems = []
    if snap.state == "LOST":
        problems.append((WARN, "target lost"))
    if snap.tracking_errors:
        problems.append(
            (WARN, f"{snap.tracking_errors} tracking error(s) in the last {snap.window_s:g} s")
        )
    fine = "idle" if snap.state == "IDLE" else f"tracking at {snap.fps:.1f} fps"
    return _settle(status, problems, fine)


def worker_status(prefix: str, hardware_id: str, snap: DiagnosticsSnapshot) -> DiagnosticStatus:
    status = _status(
        prefix + "worker",
        hardware_id,
        {
            "alive": snap.worker_alive,
            "busy_s": f"{snap.worker_busy_s:.1f}",
            "worker_errors_in_window": snap.worker_errors,
            "worker_errors": snap.worker_errors_total,
            "set_target_waiting": snap.set_target_waiting,
        },
    )
    problems = []
    if not snap.worker_alive and not snap.worker_stopping:
        problems.append((ERROR, "worker thread is not running: nothing is tracked"))
    if snap.worker_errors:
        problems.append(
            (ERROR, f"{snap.worker_errors} worker error(s) in the last {snap.window_s:g} s")
        )
    if snap.worker_busy_s > BUSY_WARN_S:
        problems.append((WARN, f"one step has been running for {snap.worker_busy_s:.0f} s"))
    return _settle(status, problems, "running")


def diagnostics_array(
    header: Header, node_name: str, hardware_id: str, snap: DiagnosticsSnapshot
) -> DiagnosticArray:
    """The node's DiagnosticArray: images, tracking and worker statuses."""
    prefix = node_name + ": "
    array = DiagnosticArray()
    array.header = header
    array.status = [
        images_status(prefix, hardware_id, snap),
        tracking_status(prefix, hardware_id, snap),
        worker_status(prefix, hardware_id, snap),
    ]
    return array
