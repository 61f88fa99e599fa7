"""``ros-tracker eval``: the INTERFACE's JSON on stdout alone, table, report, plot, peers."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from eval_trees import moving_square_frames, otb_tree

from ros_tracker.cli.main import main
from ros_tracker.evaluation.metrics import PROTOCOLS, score_sequence
from ros_tracker.evaluation.plots import plot_success_precision, ranked
from ros_tracker.evaluation.report import TrackerReport, summarize


@pytest.fixture()
def otb_root(tmp_path):
    root = str(tmp_path / "otb")
    otb_tree(root, sequences=2, frames=5)
    return root


def test_eval_json_is_exactly_the_interface_format(otb_root, tmp_path, capsys):
    out = str(tmp_path / "res")
    code = main(
        ["eval", "kcf", "--dataset", otb_root, "--format", "otb", "--out", out, "--json"]
        + ["--peers", "mil,kcf"]
    )
    captured = capsys.readouterr()
    assert code == 0
    data = json.loads(captured.out)  # stdout holds the JSON and nothing else
    assert set(data) == {"model", "dataset", "format", "sequences", "metrics"}
    assert data["model"] == "kcf" and data["format"] == "otb" and data["sequences"] == 2
    assert data["dataset"] == "otb"
    metrics = data["metrics"]
    assert set(metrics) == {"auc", "precision", "norm_precision", "ao", "sr50", "sr75", "fps"}
    for key in ("auc", "precision", "norm_precision", "ao", "sr50", "sr75"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["fps"] > 0
    # The table goes to stderr with --json, with the peer in it.
    assert "AUC" in captured.err and "mil" in captured.err
    assert sorted(os.listdir(os.path.join(out, "peers"))) == ["mil"]
    report = json.load(open(os.path.join(out, "report.json")))
    assert set(report["trackers"]) == {"kcf", "mil"}
    assert report["trackers"]["kcf"]["metrics"] == metrics


def test_eval_table_on_stdout_and_plot(otb_root, tmp_path, capsys):
    out = str(tmp_path / "res")
    assert (
        main(["eval", "kcf", "--dataset", otb_root, "--format", "otb", "--out", out, "--plot"]) == 0
    )
    captured = capsys.readouterr()
    assert captured.out.startswith("Results on otb")
    assert "kcf" in captured.out
    image = cv2.imread(os.path.join(out, "plots.png"))
    assert image is not None and image.shape[1] > image.shape[0] > 300


def test_eval_reports_user_errors_in_one_line(otb_root, tmp_path, capsys):
    assert main(["eval", "kcf", "--dataset", otb_root, "--format", "otb", "--peers", "tld"]) == 1
    assert "unknown peer 'tld'" in capsys.readouterr().err
    assert main(["eval", "kcf", "--dataset", str(tmp_path / "none"), "--format", "lasot"]) == 1
    assert "dataset folder not found" in capsys.readouterr().err


def test_help_lists_eval_and_the_composite_builder(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "eval" in text and "eval-build-composite" in text


def _report(name, shift, seed):
    rng = np.random.default_rng(seed)
    gt = np.tile([20.0, 20.0, 30.0, 30.0], (30, 1))
    pred = gt + np.hstack([rng.normal(0, shift, (30, 2)), np.zeros((30, 2))])
    score = score_sequence("s", pred, gt, PROTOCOLS["otb"], times=np.full(30, 0.01))
    return TrackerReport(name, summarize([score], PROTOCOLS["otb"]), {}, [score])


def test_plot_has_every_tracker_on_one_figure(tmp_path):
    reports = [_report("near", 2.0, 0), _report("far", 15.0, 1), _report("mid", 6.0, 2)]
    path = plot_success_precision(reports, str(tmp_path / "p.png"), "composite (not a benchmark)")
    image = cv2.imread(path)
    assert image is not None and image.shape[0] > 300
    # Legends are sorted best first, with the figure papers print beside each name.
    labels = [label for _, label in ranked(reports, "success")]
    assert [label.split()[0] for label in labels] == ["near", "mid", "far"]
    assert labels[0] == f"near [{reports[0].summary.auc:.3f}]"
    precision = [label for _, label in ranked(reports, "precision")]
    assert precision[-1] == f"far [{reports[1].summary.precision:.3f}]"


def test_a_split_without_ground_truth_runs_and_reports_speed_only(tmp_path, capsys):
    """GOT-10k's test split publishes the first box only: results for the server, no scores."""
    split = tmp_path / "got" / "test"
    seq_dir = split / "GOT-10k_Test_000001"
    boxes = moving_square_frames(str(seq_dir), 4)
    (split / "list.txt").write_text("GOT-10k_Test_000001\n")
    (seq_dir / "groundtruth.txt").write_text(",".join(f"{v:g}" for v in boxes[0]) + "\n")
    out = str(tmp_path / "res")
    args = ["eval", "kcf", "--dataset", str(tmp_path / "got"), "--format", "got10k"]
    assert main(args + ["--split", "test", "--out", out, "--json", "--plot"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)["metrics"]
    assert metrics["auc"] is None and metrics["ao"] is None and metrics["fps"] > 0
    assert "no public ground truth" in captured.err
    with open(os.path.join(out, "GOT-10k_Test_000001.txt")) as handle:
        assert len(handle.read().splitlines()) == 4
