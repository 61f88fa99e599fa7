"""training.frozen_prefixes: frozen parameters and batch-norm statistics stay as loaded."""

from __future__ import annotations

import torch
from conftest import tiny_config

from training.trainer import Trainer

FROZEN = ["backbone.stem."]


def test_frozen_prefixes_keep_weights_and_statistics(tmp_path):
    config = tiny_config(
        tmp_path / "frozen", "hcat", training={"epochs": 1, "frozen_prefixes": FROZEN}
    )
    trainer = Trainer(config)
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    frozen_keys = [k for k in before if k.startswith(tuple(FROZEN))]
    assert any("running_mean" in k for k in frozen_keys), frozen_keys
    trainer.fit()
    after = trainer.network.state_dict()
    for key in frozen_keys:
        assert torch.equal(before[key], after[key]), key
    trained = [k for k in before if not k.startswith(tuple(FROZEN)) and "weight" in k]
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    assert all(
        not p.requires_grad
        for n, p in trainer.network.named_parameters()
        if n.startswith(tuple(FROZEN))
    )
