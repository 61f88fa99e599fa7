"""Helpers of the runtime tests: tiny zoo networks and a synthetic scene (not a conftest:
the test folders share one import namespace)."""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Tuple, Union

import numpy as np
import pytest
import torch

from ros_tracker.runtime.backends.base import InferenceBackend
from ros_tracker.zoo import create_model
from ros_tracker.zoo.card import ModelCard

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


class SquareOracle(InferenceBackend):
    """Test oracle, no network: HCAT outputs for the bright square in the search crop (one
    confident cell, its box everywhere), all cells unconfident when no square is in view.
    ``scale`` multiplies the size it reports (a network that overestimates), one factor or
    (width, height) factors."""

    name = "square-oracle"

    def __init__(self, card: ModelCard, scale: Union[float, Tuple[float, float]] = 1.0) -> None:
        super().__init__(card)
        self.scale = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
        self.crops: List[Tuple[float, float]] = []

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        assert set(templates) == set(self.card.template_inputs)

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        red = search[0, 0] * self.card.std[0] + self.card.mean[0]
        coverage = np.clip((red - 40 / 255) / ((250 - 40) / 255), 0.0, 1.0)
        grid = self.card.feature_size
        logits = np.full(grid * grid, -6.0)
        boxes = np.tile([0.5, 0.5, 0.2, 0.2], (grid * grid, 1))
        if coverage.sum() > 4.0:
            size = search.shape[-1]
            centres = (np.arange(size) + 0.5) / size
            cx = float(coverage.sum(axis=0) @ centres) / coverage.sum()
            cy = float(coverage.sum(axis=1) @ centres) / coverage.sum()
            w = float(coverage.max(axis=0).sum()) / size * self.scale[0]
            h = float(coverage.max(axis=1).sum()) / size * self.scale[1]
            cell = min(int(cy * grid), grid - 1) * grid + min(int(cx * grid), grid - 1)
            logits[cell] = 6.0
            boxes[:] = (cx, cy, w, h)
        return {"cls_logits": logits[None], "boxes": boxes[None]}


class FixedCandidates(InferenceBackend):
    """Test oracle, no network: HCAT outputs whose only confident cells carry the given crop
    boxes (cx, cy, w, h) with the given logits, every other cell unconfident."""

    name = "fixed-candidates"

    def __init__(
        self,
        card: ModelCard,
        boxes: List[Tuple[float, float, float, float]],
        logits: Tuple[float, ...] = (3.0, 1.0),
    ) -> None:
        super().__init__(card)
        self.candidates = list(zip(boxes, logits))

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        pass

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        grid = self.card.feature_size
        logits = np.full(grid * grid, -8.0)
        boxes = np.zeros((grid * grid, 4))
        for index, (box, logit) in enumerate(self.candidates):
            cell = (index + 1) * grid + 1 + 4 * index  # far apart: distinct candidates
            logits[cell], boxes[cell] = logit, box
        return {"cls_logits": logits[None], "boxes": boxes[None]}


def crop_box(
    card: ModelCard,
    around: Tuple[float, float, float, float],
    box: Tuple[float, float, float, float],
) -> Tuple[float, float, float, float]:
    """``box`` (x, y, w, h image pixels) as (cx, cy, w, h) in the search crop around ``around``."""
    from ros_tracker.runtime.tracker import Tracker

    region = Tracker(card, FixedCandidates(card, []))._search_input.region(around)
    x1, y1, x2, y2 = region.corners_to_crop(box)
    return ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
