"""MixFormerV2's progressive depth pruning and MLP reduction; ABTrack's binarized pruning."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_MODELS, tiny_config

from ros_tracker.zoo.abtrack import binarize_network
from ros_tracker.zoo.abtrack_blocks import kept_dimensions
from ros_tracker.zoo.checkpoints import load_weights, save_weights
from ros_tracker.zoo.registry import create_model
from training.depth_pruning import cosine_decay, reduce_mlp
from training.models import create_network
from training.trainer import Trainer

TEACHER_4 = dict(TINY_MODELS["mixformerv2"][1], depth=4)


def test_cosine_decay_schedule():
    assert cosine_decay(0.0, 40) == 1.0
    assert cosine_decay(20.0, 40) == pytest.approx(0.5)
    assert cosine_decay(10.0, 40) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_decay(40.0, 40) == 0.0
    assert cosine_decay(55.0, 40) == 0.0


def test_progressive_depth_pruning_removes_the_faded_layers_without_changing_outputs(tmp_path):
    torch.manual_seed(0)
    teacher_path = str(tmp_path / "teacher.safetensors")
    save_weights(create_network("mixformerv2_teacher", TEACHER_4), teacher_path)
    config = tiny_config(
        tmp_path,
        "mixformerv2",
        training={"epochs": 2},
        mixformerv2={
            "stage": "deep_to_shallow",
            "teacher_model": "mixformerv2_teacher",
            "teacher_overrides": TEACHER_4,
            "teacher_weights": teacher_path,
            "eliminate_layers": [1, 2],
            "prune_epochs": 1,
        },
    )
    trainer = Trainer(config)
    assert len(trainer.network.blocks) == 4  # the student starts as the teacher's copy
    assert trainer.objective.on_progress(trainer.network, 0.5) == {"gamma": pytest.approx(0.5)}
    assert [b.residual_decay for b in trainer.network.blocks] == [1.0, 0.5, 0.5, 1.0]
    final = trainer.fit()
    decayed = trainer.network.eval()
    assert [b.residual_decay for b in decayed.blocks] == [1.0, 0.0, 0.0, 1.0]
    assert len(final.blocks) == 2 and final.card.name == "mixformerv2_b"
    inputs = decayed.example_inputs(2)
    with torch.no_grad():
        a = decayed.forward_joint(inputs["template"], inputs["online_template"], inputs["search"])
        b = final.forward_joint(inputs["template"], inputs["online_template"], inputs["search"])
        assert torch.allclose(a["box_logits"], b["box_logits"], atol=1e-6)
        assert torch.allclose(a["score_logit"], b["score_logit"], atol=1e-6)
        deployed_a = decayed(inputs["template"], inputs["online_template"], inputs["search"])
        deployed_b = final(inputs["template"], inputs["online_template"], inputs["search"])
        assert torch.allclose(deployed_a["box_logits"], deployed_b["box_logits"], atol=1e-5)
    # the written result is a plain 2-layer zoo network
    rebuilt = create_model("mixformerv2_b", **TINY_MODELS["mixformerv2"][1])
    load_weights(rebuilt, str(tmp_path / "tiny_mixformerv2" / "final.safetensors"))
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(value, final.state_dict()[key]), key


def test_mlp_reduction_starts_from_the_leading_slices():
    torch.manual_seed(2)
    teacher = create_network("mixformerv2_teacher", TEACHER_4)
    student = reduce_mlp(teacher, 1.0)
    assert student.config.mlp_ratio == 1.0
    fc1_t, fc1_s = teacher.blocks[0].mlp.fc1, student.blocks[0].mlp.fc1
    fc2_t, fc2_s = teacher.blocks[0].mlp.fc2, student.blocks[0].mlp.fc2
    assert fc1_s.weight.shape == (32, 32) and fc1_t.weight.shape == (64, 32)
    assert torch.equal(fc1_s.weight, fc1_t.weight[:32, :32])
    assert torch.equal(fc1_s.bias, fc1_t.bias[:32])
    assert torch.equal(fc2_s.weight, fc2_t.weight[:, :32])
    assert torch.equal(student.blocks[1].attn.qkv.weight, teacher.blocks[1].attn.qkv.weight)


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_vtp_stage_ends_with_a_head_divisible_physically_pruned_network(tmp_path, ratio):
    config = tiny_config(tmp_path, "abtrack", abtrack={"stage": "vtp", "pruning_ratio": ratio})
    trainer = Trainer(config)
    final = trainer.fit()
    heads = final.config.num_heads
    kept = final.config.pruned_dims
    assert kept == kept_dimensions(24, heads, ratio) and kept % heads == 0 and kept < 24
    for block in final.blocks:
        assert block.attn.kept_inputs.numel() == kept
        per_head = torch.bincount(block.attn.kept_inputs // (24 // heads), minlength=heads)
        assert (per_head == kept // heads).all()
    masked = trainer.network.eval()
    binarize_network(masked, ratio)
    inputs = masked.example_inputs(2)
    with torch.no_grad():
        for a, b in zip(
            masked(inputs["template"], inputs["search"]).values(),
            final(inputs["template"], inputs["search"]).values(),
        ):
            assert torch.allclose(a, b, atol=1e-5)
    # the written result loads into the zoo's pruned layout
    rebuilt = create_model(
        "abtrack_vit_tiny", pruned=True, pruning_ratio=ratio, **TINY_MODELS["abtrack"][1]
    )
    load_weights(rebuilt, str(tmp_path / "tiny_abtrack" / "final.safetensors"))
