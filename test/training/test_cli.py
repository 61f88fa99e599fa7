"""``ros-tracker train``: the subcommand, a tiny run end to end, the validation hook."""

from __future__ import annotations

import argparse
import json
import os
import sys

import pytest
import yaml
from conftest import TINY_MODELS

from ros_tracker.cli import main as cli_main
from ros_tracker.cli import train as train_command
from ros_tracker.runtime.model_files import resolve_model
from ros_tracker.zoo.checkpoints import load_weights
from ros_tracker.zoo.registry import create_model
from training.scalars import read_scalars


def tiny_file(tmp_path) -> str:
    name, overrides = TINY_MODELS["hit"]
    config = {
        "run": {"output_dir": str(tmp_path / "runs"), "seed": 2, "threads": 1, "progress": False},
        "model": {"name": name, "overrides": overrides},
        "data": {
            "datasets": [{"type": "synthetic", "sequences": 3, "frames": 10}],
            "samples_per_epoch": 8,
            "num_workers": 0,
        },
        "training": {"epochs": 2, "batch_size": 4, "lr_drop_epochs": [1], "log_interval": 1},
        "validation": {
            "datasets": [{"type": "synthetic", "sequences": 1, "frames": 5, "seed": 50}],
            "interval": 1,
        },
    }
    path = tmp_path / "tiny_hit_run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_train_command_runs_a_tiny_config_end_to_end(tmp_path):
    path = tiny_file(tmp_path)
    assert cli_main(["train", "--config", path, "training.lr=2e-3"]) == 0
    run_dir = tmp_path / "runs" / "tiny_hit_run"
    for name in (
        "config.yaml",
        "final.safetensors",
        "final.json",
        "best.safetensors",
        "best.json",
        "loss_curve.png",
        "scalars.jsonl",
    ):
        assert (run_dir / name).is_file(), name
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["lr"] == pytest.approx(2e-3)  # the resolved config, overrides in
    # the validation hook ran after each epoch and kept the best network
    records = read_scalars(str(run_dir / "scalars.jsonl"))
    aucs = [r["val/auc"] for r in records if "val/auc" in r]
    assert len(aucs) == 2
    best = json.loads((run_dir / "best.json").read_text())
    assert best["best"]["value"] == pytest.approx(max(aucs))
    lrs = [r["train/lr"] for r in records if "train/lr" in r]
    assert lrs[0] == pytest.approx(2e-3) and lrs[-1] == pytest.approx(2e-4)  # step decay
    final = json.loads((run_dir / "final.json").read_text())
    network = create_model(final["model"], **final["overrides"])
    load_weights(network, str(run_dir / "final.safetensors"))
    # the weights file carries the overrides too: it runs by its path alone (eval, track)
    for stem in ("final", "best"):
        source = resolve_model(str(run_dir / (stem + ".safetensors")))
        assert source.overrides == final["overrides"]
        assert source.build_network().card.extra == network.card.extra


def test_train_command_reports_config_typos_with_suggestions(tmp_path, capsys):
    assert cli_main(["train", "--config", tiny_file(tmp_path), "training.batchsize=2"]) == 1
    assert "did you mean 'training.batch_size'" in capsys.readouterr().err


def test_print_config_shows_the_resolved_config(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    args = parser.parse_args(["--config", tiny_file(tmp_path), "data.max_gap=7", "--print-config"])
    assert train_command.run(args) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["max_gap"] == 7
    assert printed["run"]["name"] == "tiny_hit_run"


def test_outside_a_source_checkout_the_command_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(train_command, "_checkout_root", lambda: str(tmp_path))
    monkeypatch.setitem(sys.modules, "training.cli", None)  # not importable from anywhere
    with pytest.raises(RuntimeError, match="source checkout"):
        train_command.load_training()
    assert not os.path.exists(tmp_path / "training")
