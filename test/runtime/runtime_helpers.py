"""Helpers of the runtime tests: tiny zoo networks and a synthetic scene (not a conftest:
the test folders share one import namespace)."""

from __future__ import annotations

import importlib
from typing import Any, Dict, Tuple

import numpy as np
import pytest
import torch

from ros_tracker.zoo import create_model

# One registered entry per family, and where its module keeps a unit-test configuration.
FAMILY_MODELS = {
    "hit": "hit_tiny",
    "hcat": "hcat",
    "mixformerv2": "mixformerv2_s",
    "abtrack": "abtrack_vit_tiny",
}
_TINY_CONSTANTS = {
    "hit": "TINY_TEST_OVERRIDES",
    "hcat": "TINY_OVERRIDES",
    "abtrack": "TINY_TEST_CONFIG",
}
_TINY_FALLBACK: Dict[str, Dict[str, Any]] = {
    "mixformerv2": dict(
        embed_dim=32, depth=2, num_heads=2, template_size=32, search_size=64, bins=16
    ),
}


def tiny_overrides(family: str) -> Dict[str, Any]:
    if family in _TINY_FALLBACK:
        return dict(_TINY_FALLBACK[family])
    module = importlib.import_module("ros_tracker.zoo." + family)
    return dict(getattr(module, _TINY_CONSTANTS[family]))


def build_tiny(family: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random-weight network of ``family``; skips the test if the family is absent."""
    name = FAMILY_MODELS[family]
    torch.manual_seed(seed)
    try:
        overrides = tiny_overrides(family)
        return create_model(name, **overrides).eval()
    except (KeyError, ModuleNotFoundError) as error:
        pytest.skip(f"zoo family {family!r} not available yet: {error}")
        raise  # unreachable, for type checkers


def square_scene(
    centre: Tuple[float, float], side: float, size: Tuple[int, int] = (160, 120)
) -> np.ndarray:
    """Dark textured background with one bright square target (BGR uint8, width x height)."""
    width, height = size
    rng = np.random.default_rng(7)
    image = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    x0 = int(round(centre[0] - side / 2))
    y0 = int(round(centre[1] - side / 2))
    image[max(y0, 0) : max(y0 + int(side), 0), max(x0, 0) : max(x0 + int(side), 0)] = (
        230,
        240,
        250,
    )
    return image
