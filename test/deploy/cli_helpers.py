"""Running ``ros-tracker`` in a subprocess, and the tiny checkpoint the CLI tests load."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from ros_tracker.zoo.checkpoints import card_metadata, save_weights
from ros_tracker.zoo.registry import create_model

from .zoo_configs import tiny_overrides


def ros_tracker(args, env, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ros_tracker.cli"] + list(args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_tiny_checkpoint(folder) -> str:
    """A tiny hit_tiny with its overrides in the metadata, as a .safetensors model file."""
    overrides = tiny_overrides("hit")
    torch.manual_seed(0)
    network = create_model("hit_tiny", **overrides).eval()
    metadata = card_metadata(network.card)
    metadata["overrides"] = json.dumps(overrides)
    path = folder / "hit_tiny_test.safetensors"
    save_weights(network, str(path), metadata)
    return str(path)
