"""One-pass evaluation metrics, defined as the got10k toolkit and pytracking define them.

Per frame (arithmetic of got10k's ``rect_iou`` and ``center_error``):
- IoU of the predicted and ground-truth boxes (intersection / (union + eps), clipped to [0, 1]);
- centre error in pixels, centres at ``x + (w - 1) / 2``;
- normalized centre error: both centres divided by the ground-truth width/height (pytracking).

Per sequence: success curve = fraction of frames with IoU *greater* than each of 21 thresholds
0:0.05:1 (so a perfect tracker scores 20/21 at AUC), precision curve = fraction with centre
error <= 0..50 px, normalized precision curve = fraction with normalized error <= 0:0.01:0.5.
The first frame's prediction is the given box. Overall: AUC, precision (at 20 px) and
normalized precision (at 0.2) average the per-sequence curves (OTB report); AO, SR0.5 and
SR0.75 pool the IoUs of all frames after the first (GOT-10k report).

Which frames count, per benchmark (``PROTOCOLS``):
- otb: every frame; a NaN or empty ground-truth row simply fails its IoU/centre tests, as in
  got10k's ExperimentOTB.
- uav123: rows with NaN ground truth (target absent) are left out (got10k's ExperimentUAV123).
- lasot: frames flagged full_occlusion / out_of_view, or with an empty box, count and fail
  every test (pytracking's LaSOT analysis).
- trackingnet: frames with an empty box count and fail (pytracking).
- got10k: the first frame and frames flagged absent are left out; boxes are clipped to the
  image first (got10k's ExperimentGOT10k).
Speed: got10k's OTB report averages each sequence's mean of 1/t over the sequences; its
GOT-10k report pools 1/t over all frames. Times of zero or less are ignored.

Where the tracker's confidence per frame is known, ``false_tracking`` is the share of the
pooled frames (as AO) that claim TRACKING (confidence >= CLAIM_THRESHOLD, the node's default
``lost_threshold``) while the box overlaps the ground truth by less than IoU 0.1: how often a
robot would follow something that is not the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
CENTRE_THRESHOLDS = np.arange(0, 51, dtype=np.float64)  # pixels
NORM_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_INDEX = 20  # CENTRE_THRESHOLDS[20] == 20 px
NORM_PRECISION_INDEX = 20  # NORM_THRESHOLDS[20] == 0.2
METRIC_NAMES = ("auc", "precision", "norm_precision", "ao", "sr50", "sr75", "fps")  # INTERFACE
# A frame "claims TRACKING" when its confidence is at least the node's default lost_threshold;
# a false claim is one whose box overlaps the ground truth by less than FALSE_CLAIM_IOU.
CLAIM_THRESHOLD = 0.3
FALSE_CLAIM_IOU = 0.1


@dataclass(frozen=True)
class Protocol:
    """Which frames count and how, for one benchmark (see the module doc)."""

    name: str
    drop_nan_rows: bool = False  # leave out rows whose ground truth is NaN
    invalid_fails: bool = False  # empty/NaN ground truth or absent flag: counted, failed
    skip_first: bool = False  # leave out the first frame
    drop_absent: bool = False  # leave out frames flagged absent
    clip_to_image: bool = False  # clip both boxes to the image before comparing
    pooled_fps: bool = False  # fps over all frames pooled, not averaged per sequence


PROTOCOLS: Dict[str, Protocol] = {
    "otb": Protocol("otb"),
    "uav123": Protocol("uav123", drop_nan_rows=True),
    "lasot": Protocol("lasot", invalid_fails=True),
    "trackingnet": Protocol("trackingnet", invalid_fails=True),
    "got10k": Protocol(
        "got10k", skip_first=True, drop_absent=True, clip_to_image=True, pooled_fps=True
    ),
}


# ------------------------------------------------------------------------------ per frame
def overlaps(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU per row of two (N, 4) x, y, w, h arrays (got10k's rect_iou arithmetic)."""
    x1 = np.maximum(pred[:, 0], gt[:, 0])
    y1 = np.maximum(pred[:, 1], gt[:, 1])
    x2 = np.minimum(pred[:, 0] + pred[:, 2], gt[:, 0] + gt[:, 2])
    y2 = np.minimum(pred[:, 1] + pred[:, 3], gt[:, 1] + gt[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def centres(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, :2] + (boxes[:, 2:] - 1.0) / 2.0


def centre_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance of the box centres in pixels."""
    return np.sqrt(np.sum((centres(pred) - centres(gt)) ** 2, axis=1))


def normalized_centre_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Centre distance with both centres divided by the ground-truth width and height."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = gt[:, 2:]
        delta = centres(pred) / scale - centres(gt) / scale
        return np.sqrt(np.sum(delta**2, axis=1))


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes cut to the image (got10k's ``bound`` handling)."""
    out = boxes.copy()
    out[:, 0] = np.clip(out[:, 0], 0, width)
    out[:, 1] = np.clip(out[:, 1], 0, height)
    out[:, 2] = np.clip(out[:, 2], 0, width - out[:, 0])
    out[:, 3] = np.clip(out[:, 3], 0, height - out[:, 1])
    return out


# ---------------------------------------------------------------------------- per sequence
@dataclass
class SequenceScore:
    name: str
    frames: int  # frames counted in the curves
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    pooled_ious: np.ndarray  # IoUs of the counted frames after the first (AO, SR)
    times: np.ndarray  # positive per-frame times in seconds
    attributes: List[str] = field(default_factory=list)
    false_claims: Optional[np.ndarray] = None  # per pooled frame, where confidences are known

    @property
    def auc(self) -> float:
        return float(np.mean(self.success_curve))

    @property
    def fps(self) -> float:
        return float(np.mean(1.0 / self.times)) if len(self.times) else float("nan")


def _valid_times(times: Optional[Sequence[float]]) -> np.ndarray:
    if times is None:
        return np.zeros(0)
    values = np.asarray(times, dtype=np.float64).reshape(-1)
    return values[np.isfinite(values) & (values > 0)]


def score_sequence(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    protocol: Protocol,
    absent: Optional[np.ndarray] = None,
    image_size: Optional[Tuple[float, float]] = None,
    times: Optional[Sequence[float]] = None,
    attributes: Optional[List[str]] = None,
    confidences: Optional[Sequence[float]] = None,
) -> Optional[SequenceScore]:
    """Scores of one sequence, or None when no frame counts (all absent, say)."""
    pred = np.array(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.array(gt, dtype=np.float64).reshape(-1, 4)
    if len(pred) != len(gt):
        raise ValueError(f"sequence {name}: {len(pred)} result boxes for {len(gt)} frames")
    pred[0] = gt[0]
    if protocol.clip_to_image:
        if image_size is None:
            raise ValueError(f"sequence {name}: image size needed to clip boxes")
        pred = clip_boxes(pred, *image_size)
        gt = clip_boxes(gt, *image_size)

    counted = np.ones(len(gt), dtype=bool)
    absent_flags = (
        np.zeros(len(gt), dtype=bool) if absent is None else np.asarray(absent, dtype=bool)
    )
    nan_rows = np.any(np.isnan(gt), axis=1)
    if protocol.drop_nan_rows:
        counted &= ~nan_rows
    if protocol.drop_absent:
        counted &= ~absent_flags & ~nan_rows
    if protocol.skip_first:
        counted[0] = False

    with np.errstate(invalid="ignore"):
        ious = overlaps(pred, gt)
        errors = centre_errors(pred, gt)
        norm_errors = normalized_centre_errors(pred, gt)
        if protocol.invalid_fails:
            failed = nan_rows | absent_flags | np.any(gt[:, 2:] <= 0, axis=1)
            ious[failed] = -1.0
            errors[failed] = np.inf
            norm_errors[failed] = np.inf
        ious, errors, norm_errors = ious[counted], errors[counted], norm_errors[counted]
        if not len(ious):
            return None
        success = np.mean(ious[:, None] > IOU_THRESHOLDS[None, :], axis=0)
        precision = np.mean(errors[:, None] <= CENTRE_THRESHOLDS[None, :], axis=0)
        norm_precision = np.mean(norm_errors[:, None] <= NORM_THRESHOLDS[None, :], axis=0)
    after_first = counted.copy()
    after_first[0] = False
    pooled = ious[after_first[counted]]
    pooled = np.where(np.isfinite(pooled) & (pooled > 0), pooled, 0.0)
    false_claims = None
    if confidences is not None:
        confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
        if len(confidences) != len(gt):
            raise ValueError(
                f"sequence {name}: {len(confidences)} confidences for {len(gt)} frames"
            )
        claimed = confidences[after_first] >= CLAIM_THRESHOLD
        false_claims = claimed & (pooled < FALSE_CLAIM_IOU)
    return SequenceScore(
        name,
        int(counted.sum()),
        success,
        precision,
        norm_precision,
        pooled,
        _valid_times(times),
        list(attributes or []),
        false_claims,
    )


# --------------------------------------------------------------------------------- overall
@dataclass
class Summary:
    """Overall scores of one tracker on a set of sequences."""

    sequences: int
    auc: float
    precision: float
    norm_precision: float
    ao: float
    sr50: float
    sr75: float
    fps: float
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    false_tracking: float = float("nan")

    def metrics(self, names: Sequence[str] = METRIC_NAMES) -> Dict[str, Optional[float]]:
        """The INTERFACE's eval metrics (or ``names``); NaN (nothing to measure) becomes None."""
        out: Dict[str, Optional[float]] = {}
        for key in names:
            value = float(getattr(self, key))
            out[key] = value if np.isfinite(value) else None
        return out


def mean_fps(times: Iterable[Optional[Sequence[float]]], protocol: Protocol) -> float:
    """Mean of 1/t: per sequence then over sequences (OTB), or over all frames (GOT-10k)."""
    valid = [_valid_times(t) for t in times]
    valid = [t for t in valid if len(t)]
    if not valid:
        return float("nan")
    if protocol.pooled_fps:
        return float(np.mean(1.0 / np.concatenate(valid)))
    return float(np.mean([np.mean(1.0 / t) for t in valid]))


def empty_summary(fps: float = float("nan")) -> Summary:
    """Scores of a split without public ground truth: only the speed is known."""
    nan = float("nan")
    curve = np.full(len(IOU_THRESHOLDS), np.nan)
    long_curve = np.full(len(CENTRE_THRESHOLDS), np.nan)
    return Summary(0, nan, nan, nan, nan, nan, nan, fps, curve, long_curve, long_curve)


def summarize(scores: Iterable[SequenceScore], protocol: Protocol) -> Summary:
    scores = [s for s in scores if s is not None]
    if not scores:
        return empty_summary()
    success = np.mean([s.success_curve for s in scores], axis=0)
    precision = np.mean([s.precision_curve for s in scores], axis=0)
    norm_precision = np.mean([s.norm_precision_curve for s in scores], axis=0)
    pooled = np.concatenate([s.pooled_ious for s in scores])
    fps = mean_fps([s.times for s in scores], protocol)
    nan = float("nan")
    claims = [s.false_claims for s in scores if s.false_claims is not None]
    claims_known = len(claims) == len(scores) and sum(len(c) for c in claims) > 0
    return Summary(
        sequences=len(scores),
        auc=float(np.mean(success)),
        precision=float(precision[PRECISION_INDEX]),
        norm_precision=float(norm_precision[NORM_PRECISION_INDEX]),
        ao=float(np.mean(pooled)) if len(pooled) else nan,
        sr50=float(np.mean(pooled > 0.5)) if len(pooled) else nan,
        sr75=float(np.mean(pooled > 0.75)) if len(pooled) else nan,
        fps=fps,
        success_curve=success,
        precision_curve=precision,
        norm_precision_curve=norm_precision,
        false_tracking=float(np.mean(np.concatenate(claims))) if claims_known else nan,
    )


def summarize_by_attribute(
    scores: Iterable[SequenceScore], protocol: Protocol
) -> Dict[str, Summary]:
    """One Summary per attribute, over the sequences that have it."""
    scores = [s for s in scores if s is not None]
    names: List[str] = []
    for score in scores:
        names.extend(a for a in score.attributes if a not in names)
    return {
        name: summarize([s for s in scores if name in s.attributes], protocol)
        for name in sorted(names)
    }
