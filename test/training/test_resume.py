"""An interrupted and resumed run ends in exactly the state of an uninterrupted one."""

from __future__ import annotations

import json
import os

import torch
from conftest import tiny_config

from training.checkpoints import latest_checkpoint, list_checkpoints
from training.scalars import read_scalars
from training.trainer import Trainer


def losses(run_dir: str):
    return [
        (r["step"], r["train/loss"]) for r in read_scalars(os.path.join(run_dir, "scalars.jsonl"))
    ]


def test_resume_mid_epoch_reproduces_the_uninterrupted_run_bitwise(tmp_path):
    # HCAT has dropout: the resumed run must restore the random generator too.
    sections = {"training": {"epochs": 2, "batch_size": 2, "keep_checkpoints": 5}}
    straight = Trainer(tiny_config(tmp_path / "straight", "hcat", **sections))
    straight.fit()  # 2 epochs x 4 steps

    first = Trainer(tiny_config(tmp_path / "resumed", "hcat", run={"max_steps": 6}, **sections))
    first.fit()
    run_dir = first.run_dir
    checkpoint = latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    with open(os.path.join(checkpoint, "trainer.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 2, 6)
    del first

    resumed = Trainer(tiny_config(tmp_path / "resumed", "hcat", run={"resume": "auto"}, **sections))
    assert (resumed.epoch, resumed.step_in_epoch, resumed.global_step) == (1, 2, 6)
    resumed.fit()

    assert resumed.global_step == straight.global_step == 8
    for (name, a), b in zip(
        straight.network.state_dict().items(), resumed.network.state_dict().values()
    ):
        assert torch.equal(a, b), name
    opt_a, opt_b = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for index, entry in opt_a["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, opt_b["state"][index][key]), (index, key)
    assert losses(straight.run_dir) == losses(run_dir)
    # checkpoints: epoch ends and the interruption, each complete, newest last
    names = [os.path.basename(p) for p in list_checkpoints(os.path.join(run_dir, "checkpoints"))]
    assert names == ["step_00000004", "step_00000006", "step_00000008"]
    for path in list_checkpoints(os.path.join(run_dir, "checkpoints")):
        assert sorted(os.listdir(path)) == [
            "model.safetensors",
            "state.safetensors",
            "trainer.json",
        ]


def test_checkpoints_hold_no_pickle(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "mixformerv2"))
    trainer.fit()
    path = latest_checkpoint(os.path.join(trainer.run_dir, "checkpoints"))
    for name in os.listdir(path):
        with open(os.path.join(path, name), "rb") as handle:
            head = handle.read(2)
        assert head != b"\x80\x04" and head[:1] != b"\x80"  # no pickle protocol header
        if name.endswith(".json"):
            with open(os.path.join(path, name), encoding="utf-8") as handle:
                json.load(handle)
