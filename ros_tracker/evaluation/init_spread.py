"""How much of a one-pass score is luck: the same evaluation from slightly different first boxes.

One-pass evaluation starts every sequence from the benchmark's first box. On a few sequences a
tracker's score turns on a handful of frames (does it stay on the player or jump to the one
beside him), and a box one pixel off at the start can tip them either way: on
``../shared/real_val`` the shipped default's AUC was 0.356 from the benchmark's boxes and
0.31 from three boxes moved by up to 4 % of the target's size. Comparing two settings by one
pass each then compares their luck. Here every sequence is run again from first boxes shifted
and resized by up to ``jitter`` of the target's side (seeded, the same boxes for every
tracker), and the spread of the AUC over the runs says which difference is real.

Run 0 always starts from the benchmark's own boxes, so its figures equal ``ros-tracker eval``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ros_tracker.evaluation.metrics import PROTOCOLS, score_sequence, summarize
from ros_tracker.evaluation.readers import Dataset
from ros_tracker.evaluation.readers import Sequence as TrackSequence
from ros_tracker.evaluation.runner import SequenceTracker, run_sequence

Box = Tuple[float, float, float, float]


def perturbed_box(box: Sequence[float], rng: np.random.Generator, jitter: float) -> Box:
    """``box`` (x, y, w, h) with its centre moved and each side scaled by up to ``jitter``
    (uniform, a fraction of the box's geometric-mean side and a log-scale factor)."""
    x, y, w, h = (float(v) for v in box)
    side = math.sqrt(w * h)
    dx, dy = rng.uniform(-jitter, jitter, 2) * side
    sw, sh = np.exp(rng.uniform(-jitter, jitter, 2))
    cx, cy = x + 0.5 * w + dx, y + 0.5 * h + dy
    nw, nh = w * float(sw), h * float(sh)
    return (cx - 0.5 * nw, cy - 0.5 * nh, nw, nh)


def first_boxes(dataset: Dataset, repeats: int, jitter: float, seed: int = 0) -> List[List[Box]]:
    """Per run, the first box of every sequence: run 0 the benchmark's, the others perturbed."""
    rng = np.random.default_rng(seed)
    runs = [[s.initial_box for s in dataset.sequences]]
    for _ in range(1, repeats):
        runs.append([perturbed_box(s.initial_box, rng, jitter) for s in dataset.sequences])
    return runs


class _StartingAt:
    """A tracker whose first box is the one given here, whatever the sequence says."""

    def __init__(self, tracker: SequenceTracker, box: Box) -> None:
        self.tracker = tracker
        self.box = box

    def initialize(self, image: np.ndarray, box: Box) -> None:
        self.tracker.initialize(image, self.box)

    def track(self, image: np.ndarray):
        return self.tracker.track(image)


@dataclass
class Spread:
    """AUC per run (run 0: the benchmark's first boxes) and per sequence over the runs."""

    run_auc: List[float]
    sequence_auc: Dict[str, List[float]]

    @property
    def mean(self) -> float:
        return float(np.mean(self.run_auc))

    @property
    def std(self) -> float:
        return float(np.std(self.run_auc))

    def lines(self) -> List[str]:
        runs = " ".join(f"{v:.3f}" for v in self.run_auc)
        out = [f"AUC {self.mean:.3f} +- {self.std:.3f} over {len(self.run_auc)} runs ({runs})"]
        for name, values in self.sequence_auc.items():
            out.append(
                f"  {name:28s} {np.mean(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"
            )
        return out


def measure_spread(
    tracker: SequenceTracker,
    dataset: Dataset,
    repeats: int = 4,
    jitter: float = 0.04,
    seed: int = 0,
    on_frame: Optional[Callable[[], None]] = None,
) -> Spread:
    """One-pass AUC of ``tracker`` on ``dataset`` from ``repeats`` sets of first boxes."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    protocol = PROTOCOLS[dataset.format]
    sequences: List[TrackSequence] = [s for s in dataset.sequences if s.has_full_ground_truth]
    if not sequences:
        raise ValueError(f"{dataset.root}: no sequence has ground truth in every frame")
    subset = Dataset(dataset.name, dataset.format, dataset.root, sequences, dataset.split)
    run_auc: List[float] = []
    per_sequence: Dict[str, List[float]] = {s.name: [] for s in sequences}
    for boxes in first_boxes(subset, repeats, jitter, seed):
        scores = []
        for sequence, box in zip(sequences, boxes):
            run = run_sequence(_StartingAt(tracker, box), sequence, on_frame)
            score = score_sequence(
                sequence.name,
                run.boxes,
                sequence.ground_truth,
                protocol,
                absent=sequence.absent,
                image_size=sequence.image_size,
            )
            if score is not None:
                scores.append(score)
                per_sequence[sequence.name].append(float(np.mean(score.success_curve)))
        run_auc.append(summarize(scores, protocol).auc)
    return Spread(run_auc, {k: v for k, v in per_sequence.items() if v})
