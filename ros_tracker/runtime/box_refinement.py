"""Where exactly is the target, and how large? The box refined against the target's first look.

The network places its box by picking one cell of a 16 x 16 grid over the search crop and
reading the box that cell regresses: for a small target a cell spans several image pixels and
the regressed centre wanders by about as much (for an 11 x 31 px target that costs a third of
its overlap), and the regressed size drifts with what the network thinks objects look like.
Around the chosen box this refinement slides the target as it looked at initialisation (grey
levels, resampled so that the box's longer side is ``SIDE`` pixels) over a window ``REACH`` of
the box's size wider on each side, by normalised cross-correlation (``cv2.matchTemplate``,
TM_CCOEFF_NORMED), at the box's size and ``SCALE_STEP`` smaller and larger (the scale search
of DSST-style correlation trackers). When the best match reaches ``threshold`` (card
``box_refinement``; 0 is off, the papers' trackers) the box's centre moves to it and its size
goes ``SCALE_RATE`` of the way to the best scale. A weak match (the target turned, was
occluded, or the box is on something else) leaves the box where the network put it.

About 0.3 ms a frame.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[float, float, float, float]

SIDE = 32  # the longer side of the box, pixels, at which the two are compared
MAX_UPSCALE = 4.0  # a box smaller than SIDE / MAX_UPSCALE is compared at this scale
REACH = 0.3  # the window extends this fraction of the box's size beyond it on each side
SCALE_STEP = 0.05  # the sizes tried: the box's, and this fraction smaller and larger
SCALE_RATE = 0.5  # how far the size goes towards the best-matching one


def _grey_window(
    image: np.ndarray, centre: Tuple[float, float], scale: float, size: Tuple[int, int]
) -> np.ndarray:
    """The image around ``centre`` scaled by ``scale`` into a ``size`` (w, h) grey window."""
    width, height = size
    matrix = np.float32(
        [
            [scale, 0.0, 0.5 * width - centre[0] * scale],
            [0.0, scale, 0.5 * height - centre[1] * scale],
        ]
    )
    window = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return cv2.cvtColor(window, cv2.COLOR_BGR2GRAY) if window.ndim == 3 else window


class BoxRefinement:
    """Moves a box onto the best match of the target's first look nearby, at three scales."""

    def __init__(self, threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"box_refinement must be in (0, 1], got {threshold}")
        self.threshold = float(threshold)
        self._look: Optional[np.ndarray] = None  # the target's first look, grey, native size
        self.last_match = float("nan")  # the best correlation of the last refine()

    def start(self, image: np.ndarray, box: Sequence[float]) -> None:
        x, y, w, h = (float(v) for v in box)
        size = (max(int(round(w)), 4), max(int(round(h)), 4))
        self._look = _grey_window(image, (x + 0.5 * w, y + 0.5 * h), 1.0, size)

    def _match(self, image: np.ndarray, box: Box) -> Tuple[float, float, float]:
        """Best correlation of the first look at ``box``'s size near ``box``, and the centre
        shift (dx, dy, image pixels) to it."""
        assert self._look is not None
        x, y, w, h = box
        scale = min(SIDE / max(w, h), MAX_UPSCALE)
        tw, th = max(int(round(w * scale)), 4), max(int(round(h * scale)), 4)
        # resampled the way the window is, so that both blur (or alias) alike
        native_h, native_w = self._look.shape
        look = cv2.warpAffine(
            self._look,
            np.float32([[tw / native_w, 0.0, 0.0], [0.0, th / native_h, 0.0]]),
            (tw, th),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        ww, wh = int(round(tw * (1 + 2 * REACH))), int(round(th * (1 + 2 * REACH)))
        window = _grey_window(image, (x + 0.5 * w, y + 0.5 * h), scale, (ww, wh))
        scores = cv2.matchTemplate(window, look, cv2.TM_CCOEFF_NORMED)
        _, best, _, (left, top) = cv2.minMaxLoc(scores)
        dx = (left + 0.5 * tw - 0.5 * ww) / scale
        dy = (top + 0.5 * th - 0.5 * wh) / scale
        return float(best), dx, dy

    def refine(self, image: np.ndarray, box: Box) -> Box:
        """``box`` moved (and resized) towards the best match, or unchanged."""
        if self._look is None:
            raise RuntimeError("BoxRefinement.refine() before start()")
        x, y, w, h = box
        if not (np.isfinite([x, y, w, h]).all() and w > 0.0 and h > 0.0):
            return box
        cx, cy = x + 0.5 * w, y + 0.5 * h
        best: Optional[Tuple[float, float, float, float]] = None  # match, factor, dx, dy
        for factor in (1.0, 1.0 - SCALE_STEP, 1.0 + SCALE_STEP):
            sw, sh = w * factor, h * factor
            match, dx, dy = self._match(image, (cx - 0.5 * sw, cy - 0.5 * sh, sw, sh))
            if math.isfinite(match) and (best is None or match > best[0]):
                best = (match, factor, dx, dy)
        self.last_match = best[0] if best is not None else float("nan")
        if best is None or best[0] < self.threshold:
            return box
        _, factor, dx, dy = best
        grow = 1.0 + SCALE_RATE * (factor - 1.0)
        nw, nh = w * grow, h * grow
        return (cx + dx - 0.5 * nw, cy + dy - 0.5 * nh, nw, nh)
