"""Does the box still show what was handed over? A confidence that falls when the target is gone.

A Siamese network's score says "an object is here" as much as "*the* object is here": a
network that follows objects rather than its template (ros_tracker.evaluation.
template_dependence) keeps scoring high on a distractor or on background it drifted to. This
check compares the tracked box with the target as it was at initialisation, on the image
itself, independently of the network:

* normalised cross-correlation of the box resampled to 32 x 32 pixels (shape and texture);
* correlation of hue-saturation histograms of the same patches (colour, robust to pose).

Their mean, clipped to [0, 1], multiplies the network's confidence (card
``appearance_weight`` blends it in: 0 leaves the network's confidence as the papers report it).
About 0.1 ms per frame.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import cv2
import numpy as np

PATCH = 32  # side of the resampled box, pixels
HIST_BINS = (16, 8)  # hue, saturation


def box_patch(image: np.ndarray, box: Sequence[float], size: int = PATCH) -> np.ndarray:
    """The box (x, y, w, h) resampled to size x size pixels (edges replicated outside)."""
    x, y, w, h = (float(v) for v in box)
    sx, sy = size / max(w, 1e-3), size / max(h, 1e-3)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    matrix = np.float32([[sx, 0.0, 0.5 * size - cx * sx], [0.0, sy, 0.5 * size - cy * sy]])
    shrinking = w > size or h > size
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _hue_saturation(patch: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(HIST_BINS), [0, 180, 0, 256])
    return cv2.normalize(hist, hist).reshape(-1)


def correlation(a: np.ndarray, b: np.ndarray, if_constant: float = 0.0) -> float:
    """Pearson correlation of two arrays of one size, in [-1, 1]; ``if_constant`` where
    either is constant (it says nothing either way)."""
    a = a.astype(np.float64).reshape(-1)
    b = b.astype(np.float64).reshape(-1)
    a = a - a.mean()
    b = b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0.0:
        return float(if_constant)
    return float(np.clip((a @ b) / norm, -1.0, 1.0))


class _Look:
    """What a box shows: its pixels resampled to PATCH x PATCH and their colour histogram."""

    def __init__(self, image: np.ndarray, box: Sequence[float]) -> None:
        self.patch = box_patch(image, box)
        self.hist = _hue_saturation(self.patch)

    def likeness(self, other: _Look) -> float:
        colour = cv2.compareHist(self.hist, other.hist, cv2.HISTCMP_CORREL)
        value = 0.5 * (correlation(self.patch, other.patch) + float(colour))
        return min(max(value, 0.0), 1.0) if np.isfinite(value) else 0.0


def _usable(box: Sequence[float]) -> bool:
    x, y, w, h = (float(v) for v in box)
    return math.isfinite(x + y + w + h) and w > 0.0 and h > 0.0


class AppearanceCheck:
    """Similarity in [0, 1] of a box in a frame to the target at initialisation.

    Objects the network confused with the target on the initialisation frame can be kept as
    distractors (:meth:`add_distractor`); :meth:`distinct_similarity` then counts a box that
    looks more like one of them than like the target as less like the target (the
    distractor-aware idea of DaSiamRPN, on the image rather than on network features).
    """

    MAX_DISTRACTORS = 8

    def __init__(self) -> None:
        self._target: Optional[_Look] = None
        self._distractors: List[_Look] = []

    @property
    def distractors(self) -> int:
        return len(self._distractors)

    def start(self, image: np.ndarray, box: Sequence[float]) -> None:
        self._target = _Look(image, box)
        self._distractors = []

    def add_distractor(self, image: np.ndarray, box: Sequence[float]) -> None:
        """Remember what ``box`` shows as something that is not the target (the first
        MAX_DISTRACTORS are kept)."""
        if _usable(box) and len(self._distractors) < self.MAX_DISTRACTORS:
            self._distractors.append(_Look(image, box))

    def similarity(self, image: np.ndarray, box: Sequence[float]) -> float:
        return self.distinct_similarity(image, box, 0.0)

    def distinct_similarity(self, image: np.ndarray, box: Sequence[float], weight: float) -> float:
        """:meth:`similarity`, less ``weight`` times by how much the box looks more like the
        likeliest distractor than like the target (clipped at 0)."""
        if self._target is None:
            raise RuntimeError("AppearanceCheck similarity before start()")
        if not _usable(box):
            return 0.0  # a broken or empty box shows nothing of the target
        look = _Look(image, box)
        value = self._target.likeness(look)
        if self._distractors and weight > 0.0:
            closest = max(d.likeness(look) for d in self._distractors)
            value -= float(weight) * max(0.0, closest - value)
        return max(value, 0.0)


def checked_confidence(score: float, similarity: float, weight: float) -> float:
    """The network's ``score`` with the appearance ``similarity`` blended in by ``weight``."""
    return float(score) * (1.0 - float(weight) + float(weight) * float(similarity))
