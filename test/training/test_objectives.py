"""Every family's objective trains: a few steps on a fixed batch lower the loss."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_MODELS, tiny_config

from ros_tracker.zoo.checkpoints import save_weights
from training.data.dataset import collate_fixed
from training.models import create_network
from training.objectives.abtrack import block_sparsity_loss, sparsity_tau
from training.trainer import Trainer

TEACHER_4 = dict(TINY_MODELS["mixformerv2"][1], depth=4)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Random tiny teachers saved as weights files (the distillation stages load them)."""
    folder = tmp_path_factory.mktemp("teachers")
    torch.manual_seed(0)
    paths = {}
    for key, name, overrides in (
        ("mixvit", "mixvit_teacher", TINY_MODELS["mixvit"][1]),
        ("token4", "mixformerv2_teacher", TEACHER_4),
    ):
        paths[key] = str(folder / f"{key}.safetensors")
        save_weights(create_network(name, overrides), paths[key])
    return paths


def cases(teachers):
    return {
        "hit": ("hit", {}),
        "hcat": ("hcat", {}),
        "abtrack_vtp": ("abtrack", {"abtrack": {"stage": "vtp"}}),
        "abtrack_finetune": ("abtrack", {"abtrack": {"stage": "finetune"}}),
        "mixformerv2_supervised": ("mixformerv2", {}),
        "mixvit_corner_teacher": ("mixvit", {}),
        "mixformerv2_dense_to_sparse": (
            "mixformerv2",
            {
                "model": {"name": "mixformerv2_teacher", "overrides": TEACHER_4},
                "mixformerv2": {
                    "stage": "dense_to_sparse",
                    "teacher_model": "mixvit_teacher",
                    "teacher_overrides": TINY_MODELS["mixvit"][1],
                    "teacher_weights": teachers["mixvit"],
                },
            },
        ),
        "mixformerv2_deep_to_shallow": (
            "mixformerv2",
            {
                "mixformerv2": {
                    "stage": "deep_to_shallow",
                    "teacher_model": "mixformerv2_teacher",
                    "teacher_overrides": TEACHER_4,
                    "teacher_weights": teachers["token4"],
                    "eliminate_layers": [1, 2],
                    "prune_epochs": 1,
                }
            },
        ),
        "mixformerv2_score_head": (
            "mixformerv2",
            {"mixformerv2": {"stage": "score_head"}, "data": {"negative_prob": 0.5}},
        ),
    }


CASES = [
    "hit",
    "hcat",
    "abtrack_vtp",
    "abtrack_finetune",
    "mixformerv2_supervised",
    "mixvit_corner_teacher",
    "mixformerv2_dense_to_sparse",
    "mixformerv2_deep_to_shallow",
    "mixformerv2_score_head",
]


@pytest.mark.parametrize("case", CASES)
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(tmp_path, teachers, case):
    family, sections = cases(teachers)[case]
    trainer = Trainer(tiny_config(tmp_path, family, **sections))
    batch = collate_fixed([trainer.dataset[i] for i in range(4)])
    frozen = {n: p.detach().clone() for n, p in trainer.network.named_parameters()}
    steps = [trainer.train_step(batch) for _ in range(8)]
    # The box term of the corner / distribution heads enters only once a box is ordered
    # (training.losses.ordered), so their total may rise then: follow the L1 term there.
    key = "score_bce" if case == "mixformerv2_score_head" else "loss"
    if family in ("hit", "mixvit", "mixformerv2") and key == "loss":
        key = "l1"
    losses = [step[key] for step in steps]
    if not trainer.objective.ddp_find_unused_parameters:  # what DDP needs by default
        trainable = [n for n, p in trainer.network.named_parameters() if p.requires_grad]
        assert all(trainer.network.get_parameter(n).grad is not None for n in trainable)
    assert losses[-1] < losses[0], losses
    assert min(losses[-3:]) < losses[0] - 1e-3, losses
    changed = {n for n, p in trainer.network.named_parameters() if not torch.equal(p, frozen[n])}
    if case == "mixformerv2_score_head":  # only the score MLP learns in that stage
        assert changed and all(n.startswith("score_head.") for n in changed)
    else:
        assert not any(n.startswith("score_head.") for n in changed if family == "mixformerv2")
        assert len(changed) > len(frozen) // 2


def test_block_sparsity_tau_follows_the_sample_difficulty_and_is_clipped():
    giou = torch.tensor([0.2, 0.4, 0.6, 9.0])
    tau = sparsity_tau(giou, tau0=0.4, slope=0.1, form="equation")  # the sign as printed
    mean = giou.mean()
    assert torch.allclose(tau[:3], (0.4 + 0.1 * (giou[:3] - mean)).clamp(0, 1))
    assert tau[3].item() == 1.0  # clipped
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.2], [1.0, 1.0]], requires_grad=True)
    loss = block_sparsity_loss(probs, tau)
    assert torch.allclose(loss, (probs.mean(1) - tau).abs())
    loss.sum().backward()
    assert probs.grad is not None  # gradients reach the decisions, not tau
