"""abtrack_avit_tiny: ABTrack on A-ViT-T (the paper's headline model), initialised from the
A-ViT release as it is distributed (a .pth with pickled training arguments)."""

from __future__ import annotations

import argparse

import torch

from ros_tracker.zoo import create_model, get_card
from ros_tracker.zoo.abtrack import TINY_TEST_CONFIG
from ros_tracker.zoo.deit_pretrained import load_timm_vit


def avit_state(dim: int, depth: int):
    """A state dict in A-ViT's (timm ViT) key layout: 14 x 14 grid, classifier head."""
    torch.manual_seed(0)
    state = {
        "patch_embed.proj.weight": torch.randn(dim, 3, 16, 16),
        "patch_embed.proj.bias": torch.randn(dim),
        "cls_token": torch.randn(1, 1, dim),
        "pos_embed": torch.randn(1, 1 + 14 * 14, dim),
        "norm.weight": torch.randn(dim),
        "norm.bias": torch.randn(dim),
        "head.weight": torch.randn(1000, dim),
        "head.bias": torch.randn(1000),
    }
    for i in range(depth):
        for part, shape in (
            ("norm1.weight", (dim,)), ("norm1.bias", (dim,)),
            ("attn.qkv.weight", (3 * dim, dim)), ("attn.qkv.bias", (3 * dim,)),
            ("attn.proj.weight", (dim, dim)), ("attn.proj.bias", (dim,)),
            ("norm2.weight", (dim,)), ("norm2.bias", (dim,)),
            ("mlp.fc1.weight", (4 * dim, dim)), ("mlp.fc1.bias", (4 * dim,)),
            ("mlp.fc2.weight", (dim, 4 * dim)), ("mlp.fc2.bias", (dim,)),
        ):  # fmt: skip
            state[f"blocks.{i}.{part}"] = torch.randn(shape)
    return state


def test_card_and_architecture_are_deit_tiny_with_a_vit_weights():
    card = get_card("abtrack_avit_tiny")
    assert card.family == "abtrack" and "A-ViT" in card.backbone
    assert "CC-BY-NC-SA-4.0" in card.extra["backbone_weights"]
    assert "not run" in card.extra["token_halting"]
    avit, deit = create_model("abtrack_avit_tiny"), create_model("abtrack_deit_tiny")
    shapes = [(n, p.shape) for n, p in avit.named_parameters()]
    assert shapes == [(n, p.shape) for n, p in deit.named_parameters()]
    assert (avit.config.embed_dim, avit.config.depth, avit.config.num_heads) == (192, 12, 3)


def test_the_a_vit_release_file_loads_without_running_its_pickle(tmp_path):
    dim, depth = TINY_TEST_CONFIG["embed_dim"], TINY_TEST_CONFIG["depth"]
    state = avit_state(dim, depth)
    path = str(tmp_path / "tiny-10-30.pth")
    args = argparse.Namespace(model="avit_tiny_patch16_224", gate_scale=10.0, gate_center=30)
    torch.save({"model": state, "epoch": 99, "args": args}, path)
    network = create_model("abtrack_avit_tiny", **TINY_TEST_CONFIG)
    report = load_timm_vit(network, path)
    assert report.unused == ["head.bias", "head.weight"]
    own = network.state_dict()
    for key in ("blocks.0.attn.qkv.weight", "patch_embed.proj.weight", "norm.bias"):
        assert torch.equal(own[key], state[key])
