"""The runner: result files in the benchmarks' format, resume, spawn workers, any tracker."""

from __future__ import annotations

import os

import numpy as np
import pytest
from eval_trees import otb_tree

from ros_tracker.evaluation.peers import OpenCVTracker
from ros_tracker.evaluation.readers import read_dataset
from ros_tracker.evaluation.runner import (
    TrackerSpec,
    read_results,
    run_sequence,
    run_tracker,
)


@pytest.fixture()
def otb(tmp_path):
    root = str(tmp_path / "otb")
    truth = otb_tree(root, sequences=2, frames=6)
    return read_dataset(root, "otb"), truth


def _lines(path):
    with open(path) as handle:
        return handle.read().splitlines()


def test_results_are_written_in_the_benchmark_format(otb, tmp_path):
    dataset, truth = otb
    out = str(tmp_path / "out")
    ran = run_tracker(TrackerSpec("kcf"), dataset, out, progress=False)
    assert ran == ["Seq0", "Seq1"]
    for sequence, boxes in zip(dataset.sequences, truth):
        lines = _lines(os.path.join(out, sequence.name + ".txt"))
        assert len(lines) == len(sequence)
        assert lines[0] == ",".join(f"{v:.3f}" for v in boxes[0])  # the given box
        assert all(len(line.split(",")) == 4 for line in lines)
        times = [float(t) for t in _lines(os.path.join(out, sequence.name + "_time.txt"))]
        assert len(times) == len(sequence) and all(t > 0 for t in times)
    # KCF follows the square that moves 3 px right per frame.
    boxes, _ = read_results(out, "Seq0")
    assert boxes[-1][0] > boxes[0][0] + 5


def test_finished_sequences_are_not_rerun(otb, tmp_path):
    dataset, _ = otb
    out = str(tmp_path / "out")
    run_tracker(TrackerSpec("kcf"), dataset, out, progress=False)
    kept = os.path.join(out, "Seq0.txt")
    before = os.stat(kept).st_mtime_ns
    assert run_tracker(TrackerSpec("kcf"), dataset, out, progress=False) == []
    # An interrupted sequence (fewer lines) and a missing one run again; the finished does not.
    cut = os.path.join(out, "Seq1.txt")
    with open(cut, "w") as handle:
        handle.write("1,1,1,1\n")
    assert run_tracker(TrackerSpec("kcf"), dataset, out, progress=False) == ["Seq1"]
    assert os.stat(kept).st_mtime_ns == before
    assert len(_lines(cut)) == 6


def test_results_of_another_tracker_are_never_mixed(otb, tmp_path):
    dataset, _ = otb
    out = str(tmp_path / "out")
    run_tracker(TrackerSpec("kcf"), dataset, out, progress=False)
    with pytest.raises(RuntimeError, match="another run"):
        run_tracker(TrackerSpec("mil"), dataset, out, progress=False)


def test_spawned_workers_give_the_same_results(otb, tmp_path):
    dataset, _ = otb
    serial, parallel = str(tmp_path / "serial"), str(tmp_path / "parallel")
    run_tracker(TrackerSpec("kcf", threads=1), dataset, serial, progress=False)
    ran = run_tracker(TrackerSpec("kcf", threads=1), dataset, parallel, workers=2, progress=False)
    assert sorted(ran) == ["Seq0", "Seq1"]
    for name in ran:
        np.testing.assert_array_equal(
            read_results(serial, name)[0], read_results(parallel, name)[0]
        )


class _Constant:
    """Any object with initialize/track runs: this one returns a bare box."""

    def initialize(self, image, box):
        self.box = box

    def track(self, image):
        return [1, 2, 3, 4]


def test_run_sequence_accepts_any_initialize_track_object(otb):
    dataset, truth = otb
    boxes, times, scores = run_sequence(_Constant(), dataset.sequences[0])
    np.testing.assert_array_equal(boxes[0], truth[0][0])
    np.testing.assert_array_equal(boxes[1:], [[1, 2, 3, 4]] * 5)
    assert times.shape == (6,)
    assert scores[0] == 1.0 and np.isnan(scores[1:]).all()  # a bare box has no confidence


def test_invalid_first_box_is_reported(otb):
    dataset, _ = otb
    sequence = dataset.sequences[0]
    sequence.ground_truth[0] = [1, 1, 0, 5]
    with pytest.raises(ValueError, match="first ground-truth box is invalid"):
        run_sequence(_Constant(), sequence)


def test_opencv_peer_keeps_the_last_box_when_it_loses_the_target():
    class Failing:
        def init(self, image, rect):
            self.rect = rect

        def update(self, image):
            return False, (0, 0, 0, 0)

    tracker = OpenCVTracker("failing", factory=Failing)
    image = np.zeros((40, 50, 3), np.uint8)
    tracker.initialize(image, (48.5, 10.2, 6, 5))  # reaches past the right edge
    assert tracker._tracker.rect == (48, 10, 2, 6)  # cut to the image, 2 px at least
    assert tracker.track(image) == ((48.5, 10.2, 6.0, 5.0), 0.0)


def test_a_zoo_model_runs_through_the_same_runner(otb, tmp_path):
    dataset, _ = otb
    dataset.sequences = dataset.sequences[:1]
    out = str(tmp_path / "zoo")
    spec = TrackerSpec("hit_tiny", backend="torch", device="cpu", threads=1)
    assert spec.name == "hit_tiny" and not spec.is_peer
    run_tracker(spec, dataset, out, progress=False)
    boxes, times = read_results(out, "Seq0")
    assert boxes.shape == (6, 4) and np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()
    assert times.shape == (6,)
