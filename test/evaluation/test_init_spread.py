"""One-pass AUC from perturbed first boxes (ros_tracker.evaluation.init_spread)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from eval_trees import otb_tree

from ros_tracker.evaluation.init_spread import first_boxes, measure_spread, perturbed_box
from ros_tracker.evaluation.metrics import PROTOCOLS, score_sequence, summarize
from ros_tracker.evaluation.readers import read_dataset
from ros_tracker.evaluation.runner import run_sequence


@pytest.fixture()
def otb(tmp_path):
    root = str(tmp_path / "otb")
    truth = otb_tree(root, sequences=2, frames=6)
    return read_dataset(root, "otb"), truth


class StaysPut:
    """Reports the box it was started on in every frame; remembers those boxes."""

    def __init__(self) -> None:
        self.starts = []

    def initialize(self, image, box) -> None:
        self.starts.append(tuple(box))

    def track(self, image):
        return self.starts[-1]


class Replays:
    """Reports the ground truth whatever it was started on."""

    def __init__(self, truth) -> None:
        self._sequences = itertools.cycle(truth)
        self._boxes = iter(())

    def initialize(self, image, box) -> None:
        self._boxes = iter(next(self._sequences)[1:])

    def track(self, image):
        return next(self._boxes)


def test_perturbed_boxes_stay_within_the_jitter() -> None:
    rng = np.random.default_rng(1)
    box = (10.0, 20.0, 40.0, 10.0)
    side = math.sqrt(40.0 * 10.0)
    for _ in range(200):
        x, y, w, h = perturbed_box(box, rng, 0.05)
        assert abs(x + w / 2 - 30.0) <= 0.05 * side + 1e-9
        assert abs(y + h / 2 - 25.0) <= 0.05 * side + 1e-9
        assert math.exp(-0.05) - 1e-9 <= w / 40.0 <= math.exp(0.05) + 1e-9
        assert math.exp(-0.05) - 1e-9 <= h / 10.0 <= math.exp(0.05) + 1e-9
    assert perturbed_box(box, rng, 0.0) == pytest.approx(box)


def test_run_zero_is_the_benchmarks_own_evaluation(otb) -> None:
    dataset, truth = otb
    tracker = StaysPut()
    spread = measure_spread(tracker, dataset, repeats=3, jitter=0.2, seed=5)
    assert len(spread.run_auc) == 3
    assert tracker.starts[:2] == [tuple(b[0]) for b in truth]  # run 0: the benchmark's boxes
    assert all(start not in tracker.starts[:2] for start in tracker.starts[2:])
    plain = [
        score_sequence(s.name, run_sequence(StaysPut(), s).boxes, s.ground_truth, PROTOCOLS["otb"])
        for s in dataset.sequences
    ]
    assert spread.run_auc[0] == pytest.approx(summarize(plain, PROTOCOLS["otb"]).auc)
    assert spread.std > 0.0  # a tracker that keeps its first box depends on it
    assert set(spread.sequence_auc) == {"Seq0", "Seq1"}
    assert all(len(v) == 3 for v in spread.sequence_auc.values())
    assert "over 3 runs" in spread.lines()[0]
    # the same seed perturbs the same way
    assert first_boxes(dataset, 3, 0.2, seed=5) == first_boxes(dataset, 3, 0.2, seed=5)
    assert first_boxes(dataset, 3, 0.2, seed=5) != first_boxes(dataset, 3, 0.2, seed=6)


def test_a_tracker_that_ignores_its_first_box_has_no_spread(otb) -> None:
    dataset, truth = otb
    spread = measure_spread(Replays(truth), dataset, repeats=4, jitter=0.2)
    assert spread.run_auc == pytest.approx([spread.run_auc[0]] * 4)
    assert spread.mean > 0.9 and spread.std == pytest.approx(0.0)


def test_at_least_one_run(otb) -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure_spread(StaysPut(), otb[0], repeats=0)
