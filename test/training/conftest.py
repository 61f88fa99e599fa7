"""Tiny training configs shared by the training tests (CPU, one thread, seeded)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:  # the training package lives at the top of the checkout
    sys.path.insert(0, ROOT)

from training.config import from_dict  # noqa: E402

TINY_MODELS = {
    "hit": (
        "hit_tiny",
        {
            "embed_dims": [16, 24, 32],
            "key_dim": 4,
            "num_heads": [2, 3, 4],
            "depths": [1, 1, 1],
            "template_size": 32,
            "search_size": 64,
            "hidden_dim": 16,
            "head_channels": 16,
        },
    ),
    "hcat": (
        "hcat",
        {
            "trunk_widths": [8, 16, 32],
            "hidden_dim": 32,
            "num_heads": 4,
            "ffn_dim": 64,
            "num_sparse": 4,
            "template_size": 64,
            "search_size": 128,
        },
    ),
    "abtrack": (
        "abtrack_vit_tiny",
        {
            "embed_dim": 24,
            "depth": 4,
            "num_heads": 3,
            "template_size": 32,
            "search_size": 64,
            "enforced_blocks": 1,
            "head_channels": 16,
        },
    ),
    "mixformerv2": (
        "mixformerv2_b",
        {
            "embed_dim": 32,
            "depth": 2,
            "num_heads": 2,
            "mlp_ratio": 2.0,
            "template_size": 32,
            "search_size": 64,
            "bins": 16,
        },
    ),
    "mixvit": (
        "mixvit_teacher",
        {
            "embed_dim": 32,
            "depth": 4,
            "num_heads": 2,
            "mlp_ratio": 2.0,
            "template_size": 32,
            "search_size": 64,
            "head_channels": 16,
        },
    ),
}


def tiny_config(tmp_path, family: str, **sections):
    """A resolved config for a tiny network of ``family`` on synthetic scenes."""
    name, overrides = TINY_MODELS[family]
    data = {
        "run": {
            "name": f"tiny_{family}",
            "output_dir": str(tmp_path),
            "seed": 3,
            "threads": 1,
            "progress": False,
            "plot": False,
            "tensorboard": False,
        },
        "model": {"name": name, "overrides": dict(overrides)},
        "data": {
            "datasets": [{"type": "synthetic", "sequences": 3, "frames": 12}],
            "samples_per_epoch": 8,
            "max_gap": 6,
            "num_workers": 0,
        },
        "training": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "grad_clip": 1.0, "log_interval": 1},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return from_dict(data)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
