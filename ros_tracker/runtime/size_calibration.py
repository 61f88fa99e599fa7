"""A per-target correction of the network's box size, learnt on the frame where the box is known.

A small box head trained on little data regresses every target towards the shapes it saw most:
on real footage the shipped default's boxes mostly come out wider and lower than the target, by a
factor that differs per target and often holds along its sequence (on
``../shared/real_val``'s first frames the width needs 0.65-1.1x, the height 0.94-1.46x; where
the first frame is not typical of the rest, the correction is off by as much).
Initialisation is the one moment the true box is known, so the tracker searches the first
frame itself a few times (around the box, shifted and zoomed a little), compares the
network's estimates with the box it was given, and from then on scales every estimate by the
median ratio per side, raised to ``strength`` (card ``size_calibration``; 0 is off, the
papers' trackers, 1 the full measured correction). The change penalty
(runtime.motion_prior) compares candidates with the previous box in the network's own units,
so the prior it is given is divided by the same factors.

Cost: ``len(VIEWS)`` search inferences at initialisation, nothing per frame.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ros_tracker.runtime.decoders import Decoded

Box = Tuple[float, float, float, float]

# (dx, dy, zoom): the search region's centre shifted by dx, dy target sides, its box zoomed,
# so that the correction does not fit the one crop that holds the target dead centre
VIEWS: Tuple[Tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0),
    (0.1, 0.0, 1.0),
    (-0.1, 0.05, 1.0),
    (0.0, -0.1, 1.1),
    (0.05, 0.05, 0.9),
)
MAX_FACTOR = 4.0  # a correction beyond this says the estimates are noise, not a bias


def view_boxes(
    box: Sequence[float], views: Sequence[Tuple[float, float, float]] = VIEWS
) -> List[Box]:
    """The boxes to search around at initialisation: ``box`` shifted and zoomed per view."""
    x, y, w, h = (float(v) for v in box)
    side = math.sqrt(w * h)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    out = []
    for dx, dy, zoom in views:
        vw, vh = w * zoom, h * zoom
        out.append((cx + dx * side - 0.5 * vw, cy + dy * side - 0.5 * vh, vw, vh))
    return out


class SizeCalibration:
    """Scales of width and height that map the network's estimates onto the target's size."""

    def __init__(self, strength: float) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"size_calibration must be in [0, 1], got {strength}")
        self.strength = float(strength)
        self.factors: Tuple[float, float] = (1.0, 1.0)

    def reset(self) -> None:
        self.factors = (1.0, 1.0)

    def fit(self, box: Sequence[float], estimate: Callable[[Box], Optional[Box]]) -> None:
        """Learn the factors for a target at ``box`` (x, y, w, h pixels); ``estimate(around)``
        is the network's uncorrected box (image pixels) for a search around ``around`` on the
        initialisation frame, or None where it gave nothing usable."""
        self.reset()
        if self.strength <= 0.0:
            return
        w, h = float(box[2]), float(box[3])
        log_w, log_h = [], []
        for around in view_boxes(box):
            found = estimate(around)
            if found is None or not all(math.isfinite(v) for v in found):
                continue
            if found[2] <= 0.0 or found[3] <= 0.0:
                continue
            log_w.append(math.log(w / found[2]))
            log_h.append(math.log(h / found[3]))
        if not log_w:
            return
        limit = math.log(MAX_FACTOR)

        def factor(logs: List[float]) -> float:
            value = min(max(float(np.median(logs)), -limit), limit)
            return math.exp(self.strength * value)

        self.factors = (factor(log_w), factor(log_h))

    def network_prior(self, prior: Optional[Tuple[float, float]]) -> Optional[Tuple[float, float]]:
        """The previous box's (w, h) in the network's own, uncorrected units."""
        if prior is None:
            return None
        return prior[0] / self.factors[0], prior[1] / self.factors[1]

    def corrected(self, decoded: Decoded) -> Decoded:
        """``decoded`` with its width and height scaled by the factors."""
        cx, cy, w, h = decoded.box
        return dataclasses.replace(decoded, box=(cx, cy, w * self.factors[0], h * self.factors[1]))
