"""The shared parity fixtures: the authors' state dicts, crops and outputs (see their README).

They live outside the repository (about 80 MB): in ``$ROS_TRACKER_PARITY_DIR`` or in
``shared/parity`` next to the checkout or one of its parent folders. Tests that need them are
skipped, with this reason, where they are absent.
"""

from __future__ import annotations

import json
import os
from typing import Dict

import numpy as np
import pytest
import torch

from ros_tracker.zoo.authors.fixtures import FOLDERS, parity_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fixture_dir(model: str) -> str:
    root = parity_root()
    if root is None or not os.path.isdir(os.path.join(root, FOLDERS[model])):
        pytest.skip(
            "parity fixtures not found: set ROS_TRACKER_PARITY_DIR or place shared/parity next "
            "to the checkout"
        )
    return os.path.join(root, FOLDERS[model])


def manifest(model: str) -> dict:
    with open(os.path.join(fixture_dir(model), "manifest.json")) as handle:
        return json.load(handle)


def authors_state(model: str) -> Dict[str, torch.Tensor]:
    """``checkpoint['net']`` of the fixture: the manifest's key order, floats as float32."""
    from safetensors.torch import load_file

    folder = fixture_dir(model)
    raw = load_file(os.path.join(folder, "state_dict.fp16.safetensors"))
    state = {}
    for key, *_ in manifest(model)["state_dict"]["keys"]:
        tensor = raw[key]
        state[key] = tensor.float() if tensor.is_floating_point() else tensor
    return state


def arrays(model: str, name: str) -> Dict[str, np.ndarray]:
    with np.load(os.path.join(fixture_dir(model), name)) as data:
        return {k: data[k] for k in data.files}


def decoded(model: str) -> dict:
    with open(os.path.join(fixture_dir(model), "outputs_decoded.json")) as handle:
        return json.load(handle)


def format_sample(model: str) -> str:
    folder = fixture_dir(model)
    names = [n for n in os.listdir(folder) if n.startswith("format_sample")]
    return os.path.join(folder, names[0])
