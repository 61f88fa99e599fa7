"""Per-family decoding of raw network outputs into one box and one confidence.

Every decoder takes the dict of raw outputs of ``track_search`` (numpy, batch 1, named by the
card's ``output_names``) and returns a :class:`Decoded`: a box (cx, cy, w, h) in coordinates
normalised to the search crop and a confidence in [0, 1]. Mapping back to the image belongs
to the tracker (runtime.crops.CropTransform). Decoders that choose among candidates (hcat,
abtrack) also take the previous box's size for the card's change penalty
(``scale_penalty``, runtime.motion_prior) and can leave their window out (``window=False``:
a region searched for a lost target, where it may be anywhere).

Family conventions (see each zoo module's docstring):

* hit: corner logits (N, 2, H, W); softmax per map, expectation over cell positions
  ((i + card.coordinate_offset) / W: cell centres by default, cell corners for the authors'
  weights). HiT uses no window and has no score head, so the confidence measures how
  concentrated the two corner distributions are (see :func:`corner_peakedness`).
* hcat: cls logits (N, H*W) and boxes (N, H*W, 4) as (cx, cy, w, h); sigmoid scores blended
  with a Hann window (weight ``window_influence``) pick the cell; confidence is the raw score
  there (the blended one with ``card.reported_score == "windowed"``, as the authors report).
* mixformerv2: box logits (N, 4, B) over bins for x1, y1, x2, y2 and a score logit (N, 1);
  expectation over bin positions (as for hit), confidence sigmoid(score_logit).
* abtrack: score logits (N, 1, H, W), offsets and sizes (N, 2, H, W) in [0, 1]; sigmoid score
  times a Hann window picks the cell; confidence is the raw score there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ros_tracker.runtime.motion_prior import change_penalty
from ros_tracker.zoo.card import ModelCard

Outputs = Dict[str, np.ndarray]
# The previous box's (w, h) in the search crop's normalised coordinates, for the change
# penalty of decoders that choose among candidates (hcat, abtrack); None: no penalty.
Prior = Optional[Tuple[float, float]]


@dataclass(frozen=True)
class Decoded:
    """One estimate: (cx, cy, w, h) normalised to the search crop, confidence in [0, 1], and
    the change penalty applied to it (1: none)."""

    box: Tuple[float, float, float, float]
    score: float
    penalty: float = 1.0
    ranking: float = 0.0  # what the pick maximised (window and penalty in), where one was made

    def __post_init__(self) -> None:
        # Plain floats, whatever numpy scalar types the arithmetic produced.
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "penalty", float(self.penalty))
        object.__setattr__(self, "ranking", float(self.ranking))


# -- shared pieces --------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function (no overflow warnings for large |x|)."""
    x = np.asarray(x, dtype=np.float64)
    positive = x >= 0
    out = np.empty_like(x)
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp_x = np.exp(x[~positive])
    out[~positive] = exp_x / (1.0 + exp_x)
    return out


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)


def hann_window(height: int, width: int, zero_edges: bool) -> np.ndarray:
    """2-D Hann window (outer product of 1-D windows), peak 1 at the centre.

    ``zero_edges=True`` is numpy's ``np.hanning`` (ends at 0; the Siamese trackers' window,
    used by HCAT). ``zero_edges=False`` samples the window at k / (n + 1), k = 1..n, so border
    cells keep a small weight (the OSTrack-style window ABTrack's code family uses).
    """

    def one_d(n: int) -> np.ndarray:
        if zero_edges:
            return np.hanning(n)
        k = np.arange(1, n + 1, dtype=np.float64)
        return 0.5 - 0.5 * np.cos(2.0 * math.pi * k / (n + 1))

    return np.outer(one_d(height), one_d(width))


def corners_to_centre(x1: float, y1: float, x2: float, y2: float) -> Tuple[float, ...]:
    return 0.5 * (x1 + x2), 0.5 * (y1 + y2), x2 - x1, y2 - y1


def _first(outputs: Outputs, name: str) -> np.ndarray:
    if name not in outputs:
        raise KeyError(f"network output {name!r} missing; got {sorted(outputs)}")
    return np.asarray(outputs[name])[0]


def _penalty(w: np.ndarray, h: np.ndarray, prior: Prior, k: float) -> np.ndarray:
    """Change penalty per candidate (runtime.motion_prior), ones where there is none."""
    if prior is None or k <= 0.0:
        return np.ones(np.shape(w), dtype=np.float64)
    return change_penalty(w, h, prior, k)


# -- HiT ------------------------------------------------------------------------------------


def corner_peakedness(probabilities: np.ndarray) -> float:
    """1 for a distribution on one cell, 0 for a uniform one, from its spatial spread.

    spread = sqrt((Var x + Var y) / (same for a uniform map)), in cell-normalised units, and
    peakedness = 1 - spread clipped to [0, 1]. A spread measure (rather than entropy) also
    falls for two separate sharp peaks, where the expected corner is meaningless.
    """
    height, width = probabilities.shape
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    px = probabilities.sum(axis=0)
    py = probabilities.sum(axis=1)
    var_x = float(px @ (xs * xs) - (px @ xs) ** 2)
    var_y = float(py @ (ys * ys) - (py @ ys) ** 2)
    uniform = (1.0 - 1.0 / width**2) / 12.0 + (1.0 - 1.0 / height**2) / 12.0
    if uniform <= 0.0:  # a 1x1 map carries no spatial information
        return 1.0
    spread = math.sqrt(max(var_x + var_y, 0.0) / uniform)
    return min(max(1.0 - spread, 0.0), 1.0)


class CornerDecoder:
    """HiT: expectation of the top-left and bottom-right corner distributions."""

    def __init__(self, card: ModelCard) -> None:
        self.name = card.output_names[0]
        self.offset = float(card.coordinate_offset)

    def __call__(self, outputs: Outputs, prior: Prior = None, window: bool = True) -> Decoded:
        maps = _first(outputs, self.name)  # (2, H, W)
        if maps.ndim != 3 or maps.shape[0] != 2:
            raise ValueError(f"{self.name} must be (N, 2, H, W), got {outputs[self.name].shape}")
        _, height, width = maps.shape
        probabilities = softmax(maps.reshape(2, -1), axis=-1).reshape(2, height, width)
        xs = (np.arange(width) + self.offset) / width
        ys = (np.arange(height) + self.offset) / height
        x1 = float(probabilities[0].sum(axis=0) @ xs)
        y1 = float(probabilities[0].sum(axis=1) @ ys)
        x2 = float(probabilities[1].sum(axis=0) @ xs)
        y2 = float(probabilities[1].sum(axis=1) @ ys)
        # The box is only as reliable as its vaguer corner.
        score = min(corner_peakedness(probabilities[0]), corner_peakedness(probabilities[1]))
        return Decoded(box=corners_to_centre(x1, y1, x2, y2), score=score)


# -- HCAT -----------------------------------------------------------------------------------


class WindowedClassificationDecoder:
    """HCAT: pick the cell by window-blended classification score, read its box."""

    def __init__(self, card: ModelCard) -> None:
        self.cls_name, self.box_name = card.output_names[:2]
        self.use_window = bool(card.hann_window) and card.window_influence > 0.0
        self.window_influence = float(card.window_influence)
        self.scale_penalty = float(card.scale_penalty)
        self.report_windowed = card.reported_score == "windowed"
        self._windows: Dict[int, np.ndarray] = {}

    def _window(self, cells: int) -> np.ndarray:
        if cells not in self._windows:
            side = int(round(math.sqrt(cells)))
            if side * side != cells:
                raise ValueError(f"HCAT output of {cells} cells is not a square grid")
            self._windows[cells] = hann_window(side, side, zero_edges=True).reshape(-1)
        return self._windows[cells]

    def _ranked(
        self, outputs: Outputs, prior: Prior, window: bool
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        scores = sigmoid(_first(outputs, self.cls_name).reshape(-1))
        boxes = _first(outputs, self.box_name).reshape(-1, 4)
        if boxes.shape[0] != scores.shape[0]:
            raise ValueError(f"{boxes.shape[0]} boxes for {scores.shape[0]} scores")
        penalty = _penalty(boxes[:, 2], boxes[:, 3], prior, self.scale_penalty)
        ranking = scores * penalty
        if self.use_window and window:
            influence = self.window_influence
            ranking = ranking * (1.0 - influence) + self._window(scores.shape[0]) * influence
        return scores, boxes, penalty, ranking

    def _decoded(self, index: int, scores, boxes, penalty, ranking) -> Decoded:
        cx, cy, w, h = (float(v) for v in boxes[index])
        score = ranking[index] if self.report_windowed else scores[index]
        return Decoded(
            box=(cx, cy, w, h), score=float(score), penalty=penalty[index], ranking=ranking[index]
        )

    def __call__(self, outputs: Outputs, prior: Prior = None, window: bool = True) -> Decoded:
        ranked = self._ranked(outputs, prior, window)
        return self._decoded(int(np.argmax(ranked[3])), *ranked)

    def candidates(
        self,
        outputs: Outputs,
        prior: Prior = None,
        window: bool = True,
        count: int = 5,
        min_ratio: float = 0.5,
    ) -> List[Decoded]:
        """Up to ``count`` distinct candidates, best first: cells ranked at least ``min_ratio``
        of the best, each box centred over half its side away from those already taken (a
        cell's neighbours point at the same object)."""
        ranked = self._ranked(outputs, prior, window)
        scores, boxes, _, ranking = ranked
        order = np.argsort(-ranking, kind="stable")
        floor = float(ranking[order[0]]) * float(min_ratio)
        taken: List[int] = []
        for index in order:
            if len(taken) >= count or ranking[index] < floor:
                break
            cx, cy, w, h = boxes[index]
            reach = 0.5 * math.sqrt(max(float(w * h), 0.0))
            if all(math.hypot(cx - boxes[t][0], cy - boxes[t][1]) >= reach for t in taken):
                taken.append(int(index))
        return [self._decoded(i, *ranked) for i in taken]


# -- MixFormerV2 ----------------------------------------------------------------------------


class DistributionDecoder:
    """MixFormerV2: expectation over bins per box side, score from the score token."""

    def __init__(self, card: ModelCard) -> None:
        self.box_name, self.score_name = card.output_names[:2]
        self.offset = float(card.coordinate_offset)

    def __call__(self, outputs: Outputs, prior: Prior = None, window: bool = True) -> Decoded:
        logits = _first(outputs, self.box_name)  # (4, B)
        if logits.ndim != 2 or logits.shape[0] != 4:
            raise ValueError(
                f"{self.box_name} must be (N, 4, B), got {outputs[self.box_name].shape}"
            )
        bins = logits.shape[1]
        positions = (np.arange(bins) + self.offset) / bins
        x1, y1, x2, y2 = (float(v) for v in softmax(logits, axis=-1) @ positions)
        score = float(sigmoid(_first(outputs, self.score_name).reshape(-1)[0]))
        return Decoded(box=corners_to_centre(x1, y1, x2, y2), score=score)


# -- ABTrack --------------------------------------------------------------------------------


class CenterDecoder:
    """ABTrack: peak of the windowed score map, offset and size read at the peak."""

    def __init__(self, card: ModelCard) -> None:
        self.score_name, self.offset_name, self.size_name = card.output_names[:3]
        self.use_window = bool(card.hann_window)
        self.scale_penalty = float(card.scale_penalty)
        self._windows: Dict[Tuple[int, int], np.ndarray] = {}

    def _window(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._windows:
            self._windows[key] = hann_window(height, width, zero_edges=False)
        return self._windows[key]

    def __call__(self, outputs: Outputs, prior: Prior = None, window: bool = True) -> Decoded:
        score_map = sigmoid(_first(outputs, self.score_name)[0])  # (H, W)
        offsets = _first(outputs, self.offset_name)  # (2, H, W)
        sizes = _first(outputs, self.size_name)  # (2, H, W)
        height, width = score_map.shape
        penalty = _penalty(sizes[0], sizes[1], prior, self.scale_penalty)
        ranking = score_map * penalty
        if self.use_window and window:
            ranking = ranking * self._window(height, width)
        iy, ix = np.unravel_index(int(np.argmax(ranking)), (height, width))
        cx = (ix + float(offsets[0, iy, ix])) / width
        cy = (iy + float(offsets[1, iy, ix])) / height
        w = float(sizes[0, iy, ix])
        h = float(sizes[1, iy, ix])
        return Decoded(box=(cx, cy, w, h), score=float(score_map[iy, ix]), penalty=penalty[iy, ix])


# -- selection ------------------------------------------------------------------------------

# families whose first output is a map of per-cell target logits
SCORE_MAP_FAMILIES = ("hcat", "abtrack")


def score_map(card: ModelCard, outputs: Outputs) -> np.ndarray:
    """The per-cell target probabilities of one search crop (H, W), for the families that
    score every cell (hcat, abtrack); ValueError for the others, which score one box only."""
    if card.family not in SCORE_MAP_FAMILIES:
        raise ValueError(f"{card.name} ({card.family}) has no per-cell score map")
    logits = np.asarray(_first(outputs, card.output_names[0]), dtype=np.float64).reshape(-1)
    side = int(round(math.sqrt(logits.size)))
    if side * side != logits.size:
        raise ValueError(f"a score map of {logits.size} cells is not a square grid")
    return sigmoid(logits).reshape(side, side)


_DECODERS: Dict[str, Callable[[ModelCard], Callable[..., Decoded]]] = {
    "hit": CornerDecoder,
    "hcat": WindowedClassificationDecoder,
    "mixformerv2": DistributionDecoder,
    "abtrack": CenterDecoder,
}


def make_decoder(card: ModelCard) -> Callable[..., Decoded]:
    """The decoder for ``card.family``."""
    if card.family not in _DECODERS:
        raise KeyError(f"no decoder for family {card.family!r}; known: {sorted(_DECODERS)}")
    return _DECODERS[card.family](card)
