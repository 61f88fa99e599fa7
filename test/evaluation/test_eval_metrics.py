"""Metrics: hand-checked cases, and equality with the got10k toolkit on the same files.

The toolkit side uses got10k's own ``rect_iou`` and ``center_error`` and follows its report
code step by step (ExperimentOTB.report/_calc_curves, ExperimentUAV123._calc_metrics,
ExperimentGOT10k.report/_evaluate), reading the result files with ``np.loadtxt`` as it does.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from ros_tracker.evaluation.metrics import PROTOCOLS, score_sequence, summarize
from ros_tracker.evaluation.readers import Dataset, Sequence
from ros_tracker.evaluation.report import score_tracker
from ros_tracker.evaluation.runner import write_results


def test_perfect_tracker_scores_as_the_toolkits_define_it():
    gt = np.array([[10, 10, 20, 30], [12, 11, 20, 30], [15, 13, 22, 28]], dtype=float)
    score = score_sequence("s", gt.copy(), gt, PROTOCOLS["otb"], times=[0.01, 0.02, 0.02])
    summary = summarize([score], PROTOCOLS["otb"])
    # IoU must be *greater* than each threshold: the threshold 1.0 never passes.
    assert summary.auc == pytest.approx(20 / 21)
    assert summary.precision == 1.0 and summary.norm_precision == 1.0
    assert summary.ao == pytest.approx(1.0) and summary.sr50 == 1.0 and summary.sr75 == 1.0
    assert summary.fps == pytest.approx(np.mean([100, 50, 50]))


def test_hand_computed_iou_centre_error_and_first_frame_replacement():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    pred = np.array([[50, 50, 5, 5], [5, 0, 10, 10], [30, 40, 10, 10]], dtype=float)
    score = score_sequence("s", pred, gt, PROTOCOLS["otb"])
    # Frame 0 is the given box (IoU 1), frame 1 IoU 50/150, frame 2 IoU 0 and 50 px away.
    ious = np.array([1.0, 1 / 3, 0.0])
    expected = np.mean(ious[:, None] > np.linspace(0, 1, 21)[None, :], axis=0)
    np.testing.assert_allclose(score.success_curve, expected)
    assert score.precision_curve[4] == pytest.approx(1 / 3)  # only frame 0 within 4 px
    assert score.precision_curve[5] == pytest.approx(2 / 3)  # frame 1 is 5 px off
    assert score.precision_curve[50] == pytest.approx(1.0)  # frame 2 is exactly 50 px off
    assert score.norm_precision_curve[50] == pytest.approx(2 / 3)  # 0.5 width off: frame 1 only
    np.testing.assert_allclose(score.pooled_ious, [1 / 3, 0.0])


def test_absent_frames_per_benchmark():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]], dtype=float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    absent = np.array([False, True, True, False])
    otb = score_sequence("s", pred, gt, PROTOCOLS["otb"], absent=absent)
    uav = score_sequence("s", pred, gt, PROTOCOLS["uav123"], absent=absent)
    lasot = score_sequence("s", pred, gt, PROTOCOLS["lasot"], absent=absent)
    got = score_sequence("s", pred, gt, PROTOCOLS["got10k"], absent=absent, image_size=(64, 64))
    assert otb.frames == 4 and otb.precision_curve[20] == pytest.approx(3 / 4)  # NaN row fails
    assert uav.frames == 3 and uav.precision_curve[20] == 1.0  # NaN row left out
    assert lasot.frames == 4 and lasot.precision_curve[20] == pytest.approx(2 / 4)  # flags fail
    assert got.frames == 1 and got.success_curve[0] == 1.0  # first and absent frames left out
    np.testing.assert_allclose(got.pooled_ious, [1.0])
    assert score_sequence("s", pred[:1], gt[:1], PROTOCOLS["got10k"], image_size=(9, 9)) is None


def test_got10k_protocol_clips_boxes_to_the_image():
    gt = np.array([[0, 0, 10, 10], [50, 50, 10, 10]], dtype=float)
    pred = np.array([[0, 0, 10, 10], [50, 50, 20, 20]], dtype=float)
    clipped = score_sequence("s", pred, gt, PROTOCOLS["got10k"], image_size=(60, 60))
    unclipped = score_sequence("s", pred, gt, PROTOCOLS["otb"])
    np.testing.assert_allclose(clipped.pooled_ious, [1.0])
    np.testing.assert_allclose(unclipped.pooled_ious, [0.25])


# ----------------------------------------------------------- equality with the got10k toolkit
def _random_sequences(rng, count=4):
    """Ground truth with NaN rows, empty boxes and varied sizes; noisy predictions."""
    sequences = []
    for s in range(count):
        frames = int(rng.integers(8, 20))
        xy = np.cumsum(rng.normal(0, 4, (frames, 2)), axis=0) + 100
        wh = np.abs(rng.normal(40, 12, (frames, 2))) + 2
        gt = np.hstack([xy, wh])
        absent = np.zeros(frames, dtype=bool)
        if s % 2 == 0:
            gt[frames // 2] = np.nan
            absent[frames // 2] = True
        if s == 1:
            gt[frames - 2, 2:] = 0.0  # a box of zero size
        pred = np.hstack(
            [xy + rng.normal(0, 10, (frames, 2)), wh * rng.uniform(0.6, 1.5, (frames, 2))]
        )
        pred = np.round(pred, 3)
        times = rng.uniform(0.005, 0.05, frames)
        times[0] = 0.3
        sequences.append((f"seq{s}", gt, absent, pred, times))
    return sequences


def _gt_text(gt, separator):
    return "\n".join(
        separator.join("NaN" if np.isnan(v) else f"{v:.4f}" for v in row) for row in gt
    )


def _dataset(tmp_path, fmt, sequences):
    items = []
    for index, (name, gt, absent, _, _) in enumerate(sequences):
        # Our reader parses the same text the toolkit does (comma, tab or space separated).
        path = os.path.join(str(tmp_path), name + "_gt.txt")
        with open(path, "w") as handle:
            handle.write(_gt_text(gt, [",", "\t", " "][index % 3]))
        from ros_tracker.evaluation.readers import read_boxes

        frames = [f"{i}.jpg" for i in range(len(gt))]
        items.append(Sequence(name, frames, read_boxes(path), absent=absent, image_size=(160, 150)))
    return Dataset("random", fmt, str(tmp_path), items)


def _toolkit_otb(result_dir, sequences, drop_nan_rows):
    from got10k.utils.metrics import center_error, rect_iou

    nbins_iou, nbins_ce = 21, 51
    succ_curves, prec_curves, speeds = [], [], []
    for index, (name, gt, _, _, _) in enumerate(sequences):
        anno = np.loadtxt(io.StringIO(_gt_text(gt, [",", "\t", " "][index % 3]).replace(",", " ")))
        boxes = np.loadtxt(os.path.join(result_dir, name + ".txt"), delimiter=",")
        boxes[0] = anno[0]
        if drop_nan_rows:  # ExperimentUAV123._calc_metrics
            valid = ~np.any(np.isnan(anno), axis=1)
            boxes, anno = boxes[valid, :], anno[valid, :]
        ious = rect_iou(boxes, anno)
        errors = center_error(boxes, anno)
        # ExperimentOTB._calc_curves
        bin_iou = np.greater(ious[:, None], np.linspace(0, 1, nbins_iou)[None, :])
        bin_ce = np.less_equal(errors[:, None], np.arange(0, nbins_ce)[None, :])
        succ_curves.append(np.mean(bin_iou, axis=0))
        prec_curves.append(np.mean(bin_ce, axis=0))
        times = np.loadtxt(os.path.join(result_dir, name + "_time.txt"))
        times = times[times > 0]
        speeds.append(np.mean(1.0 / times) if len(times) else 0.0)
    succ_curve = np.mean(succ_curves, axis=0)
    prec_curve = np.mean(prec_curves, axis=0)
    speeds = np.array(speeds)
    return {
        "auc": np.mean(succ_curve),
        "precision": prec_curve[20],
        "fps": np.sum(speeds) / np.count_nonzero(speeds),
        "success_curve": succ_curve,
    }


def _toolkit_got10k(result_dir, sequences, bound):
    from got10k.utils.metrics import rect_iou

    all_ious, all_times = [], []
    for index, (name, gt, absent, _, _) in enumerate(sequences):
        anno = np.loadtxt(io.StringIO(_gt_text(gt, [",", "\t", " "][index % 3]).replace(",", " ")))
        boxes = np.loadtxt(os.path.join(result_dir, name + ".txt"), delimiter=",")
        covers = np.where(absent, 0, 8)[1:]
        ious = rect_iou(boxes[1:].copy(), anno[1:].copy(), bound=bound)
        all_ious.append(ious[covers > 0])
        times = np.loadtxt(os.path.join(result_dir, name + "_time.txt"), delimiter=",")
        times = times[~np.isnan(times)]
        all_times.append(times[times > 0])
    ious = np.concatenate(all_ious)
    times = np.concatenate(all_times)
    return {
        "ao": np.mean(ious),
        "sr50": np.mean(ious > 0.5),
        "sr75": np.mean(ious > 0.75),  # the toolkit reports SR at 0.5; 0.75 likewise
        "fps": np.mean(1.0 / times),
    }


@pytest.mark.parametrize("fmt", ["otb", "uav123"])
def test_otb_and_uav123_metrics_equal_the_got10k_toolkit(tmp_path, fmt):
    pytest.importorskip("got10k.utils.metrics")
    rng = np.random.default_rng(3 if fmt == "otb" else 4)
    sequences = _random_sequences(rng)
    result_dir = str(tmp_path / "results")
    for name, _, _, pred, times in sequences:
        write_results(result_dir, name, pred, times)
    ours = score_tracker(_dataset(tmp_path, fmt, sequences), result_dir, "t").summary
    theirs = _toolkit_otb(result_dir, sequences, drop_nan_rows=fmt == "uav123")
    assert ours.auc == pytest.approx(theirs["auc"], abs=1e-6)
    assert ours.precision == pytest.approx(theirs["precision"], abs=1e-6)
    assert ours.fps == pytest.approx(theirs["fps"], abs=1e-6)
    np.testing.assert_allclose(ours.success_curve, theirs["success_curve"], atol=1e-6)
    assert 0.05 < ours.auc < 0.9  # a case where the thresholds matter


def test_got10k_metrics_equal_the_got10k_toolkit(tmp_path):
    pytest.importorskip("got10k.utils.metrics")
    sequences = _random_sequences(np.random.default_rng(5))
    result_dir = str(tmp_path / "results")
    for name, _, _, pred, times in sequences:
        write_results(result_dir, name, pred, times)
    ours = score_tracker(_dataset(tmp_path, "got10k", sequences), result_dir, "t").summary
    theirs = _toolkit_got10k(result_dir, sequences, bound=(160, 150))
    for key in ("ao", "sr50", "sr75", "fps"):
        assert getattr(ours, key) == pytest.approx(theirs[key], abs=1e-6), key
    assert 0.1 < ours.ao < 0.9
