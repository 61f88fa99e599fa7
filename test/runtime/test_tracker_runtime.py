"""The tracker end to end: real tiny zoo networks, and a geometry check per family."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np
import pytest
from runtime_helpers import FAMILY_MODELS, build_tiny, square_scene

from ros_tracker.runtime.backends.base import InferenceBackend
from ros_tracker.runtime.backends.torch_backend import TorchBackend
from ros_tracker.runtime.tracker import STAGES, Tracker, TrackResult
from ros_tracker.zoo.card import ModelCard

FAMILIES = sorted(FAMILY_MODELS)


class CountingBackend(InferenceBackend):
    """Wraps a real backend and counts how often each half runs."""

    def __init__(self, inner: InferenceBackend) -> None:
        super().__init__(inner.card)
        self.inner = inner
        self.name = inner.name
        self.template_calls = 0
        self.search_calls = 0

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        self.template_calls += 1
        self.inner.set_template(templates)

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        self.search_calls += 1
        return self.inner.run_search(search)


def iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def moving_square(frames: int, start=(60.0, 50.0), step=(3.0, 2.0), side=20.0):
    """(image, true box) pairs of a bright square moving across a dark textured scene
    (whole-pixel positions, so the drawn square is exactly the true box)."""
    for k in range(frames):
        centre = (start[0] + step[0] * k, start[1] + step[1] * k)
        box = (centre[0] - side / 2, centre[1] - side / 2, side, side)
        yield square_scene(centre, side), box


# -- real networks ----------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_end_to_end_with_a_real_network(family: str) -> None:
    network = build_tiny(family)
    card = network.card
    backend = CountingBackend(TorchBackend(card, network))
    tracker = Tracker(card, backend)
    assert not tracker.initialized
    assert tracker.backend_name == "torch-cpu" and tracker.model_name == card.name
    scenes = list(moving_square(6))
    tracker.initialize(scenes[0][0], scenes[0][1])
    assert tracker.initialized
    for image, _ in scenes[1:]:
        result = tracker.track(image)
        assert isinstance(result, TrackResult)
        x, y, w, h = result.box
        assert all(isinstance(v, float) for v in result.box)
        assert 0.0 <= x and 0.0 <= y and w > 0 and h > 0
        assert x + w <= 160 + 1e-6 and y + h <= 120 + 1e-6
        assert 0.0 <= result.score <= 1.0
        assert set(result.timings) == set(STAGES)
        assert all(t >= 0.0 for t in result.timings.values())
    # Template side once per initialisation (no online swap within 5 frames).
    assert backend.template_calls == 1 and backend.search_calls == 5
    tracker.initialize(scenes[0][0], scenes[0][1])
    assert backend.template_calls == 2 and tracker.frame_index == 0


# -- geometry: a backend that finds the bright square and answers in the family's format --


class SquareFinderBackend(InferenceBackend):
    """Test oracle, no network: locates the bright square in the search crop and writes
    what a perfect network of ``card.family`` would output for it."""

    name = "square-finder"

    def __init__(self, card: ModelCard, grid: int = 16, bins: int = 64) -> None:
        super().__init__(card)
        self.grid = grid
        self.bins = bins
        self.found: List[Tuple[float, float, float, float]] = []

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        assert set(templates) == set(self.card.template_input_names)

    def locate(self, search: np.ndarray) -> Tuple[float, float, float, float]:
        # Red channel back in 0..1: background <= 40/255, square 250/255. Coverage m of each
        # crop pixel by the square, exact up to the resampling blend at its edges.
        red = search[0, 0] * self.card.std[0] + self.card.mean[0]
        coverage = np.clip((red - 40 / 255) / ((250 - 40) / 255), 0.0, 1.0)
        size = search.shape[-1]
        total = coverage.sum()
        centres = (np.arange(size) + 0.5) / size
        cx = float(coverage.sum(axis=0) @ centres) / total
        cy = float(coverage.sum(axis=1) @ centres) / total
        w = float(coverage.max(axis=0).sum()) / size
        h = float(coverage.max(axis=1).sum()) / size
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        self.found.append(box)
        return box

    def _bump(self, value: float, count: int) -> np.ndarray:
        centres = (np.arange(count) + 0.5) / count
        return -0.5 * ((centres - value) * count) ** 2  # a Gaussian of one cell, as logits

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        x1, y1, x2, y2 = self.locate(search)
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        family, g = self.card.family, self.grid
        if family == "hit":
            maps = [
                self._bump(y, g)[:, None] + self._bump(x, g)[None, :]
                for x, y in ((x1, y1), (x2, y2))
            ]
            return {"corner_logits": np.stack(maps)[None].astype(np.float32)}
        if family == "mixformerv2":
            logits = np.stack([self._bump(v, self.bins) for v in (x1, y1, x2, y2)])
            return {"box_logits": logits[None], "score_logit": np.array([[4.0]])}
        ix, iy = int(cx * g), int(cy * g)
        scores = np.full((g, g), -6.0)
        scores[iy, ix] = 6.0
        if family == "hcat":
            boxes = np.tile(np.array([cx, cy, w, h]), (1, g * g, 1))
            return {"cls_logits": scores.reshape(1, -1), "boxes": boxes}
        offsets = np.stack([np.full((g, g), cx * g - ix), np.full((g, g), cy * g - iy)])
        sizes = np.stack([np.full((g, g), w), np.full((g, g), h)])
        return {
            "score_map": scores[None, None],
            "offset_map": offsets[None],
            "size_map": sizes[None],
        }


@pytest.mark.parametrize("family", FAMILIES)
def test_follows_a_moving_target_with_family_decoding(family: str) -> None:
    card = build_tiny(family).card
    tracker = Tracker(card, SquareFinderBackend(card))
    scenes = list(moving_square(16))
    tracker.initialize(*scenes[0])
    for image, truth in scenes[1:]:
        result = tracker.track(image)
        assert iou(result.box, truth) > 0.97, (result.box, truth)
        assert result.score > 0.7


@pytest.mark.parametrize("family", FAMILIES)
def test_box_stays_inside_the_image_when_the_target_leaves(family: str) -> None:
    card = build_tiny(family).card
    tracker = Tracker(card, SquareFinderBackend(card))
    # Square moving out through the right border (image width 160).
    scenes = list(moving_square(12, start=(130.0, 60.0), step=(4.0, 0.0)))
    tracker.initialize(*scenes[0])
    for image, _ in scenes[1:7]:
        x, y, w, h = tracker.track(image).box
        assert x >= 0.0 and y >= 0.0 and x + w <= 160.0 + 1e-9 and y + h <= 120.0 + 1e-9
        assert min(w, h) >= (10.0 if family != "hcat" else 0.0)


# -- robustness and validation ----------------------------------------------------------


class NanBackend(SquareFinderBackend):
    """Answers like SquareFinderBackend, but NaN from the second frame on."""

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        outputs = super().run_search(search)
        if len(self.found) > 1:
            return {k: np.full_like(v, np.nan, dtype=np.float64) for k, v in outputs.items()}
        return outputs


@pytest.mark.parametrize(
    "family, policy",
    [("mixformerv2", {}), ("hcat", {"appearance_rerank": 0.8, "appearance_weight": 0.9})],
)
def test_nan_outputs_keep_the_last_box_with_zero_confidence(family, policy) -> None:
    card = build_tiny(family).card.replace(**policy)
    tracker = Tracker(card, NanBackend(card))
    scenes = list(moving_square(3))
    tracker.initialize(*scenes[0])
    first = tracker.track(scenes[1][0])
    second = tracker.track(scenes[2][0])
    assert second.box == first.box and second.score == 0.0


@pytest.fixture(scope="module")
def finder_tracker() -> Tracker:
    card = build_tiny("abtrack").card
    return Tracker(card, SquareFinderBackend(card))


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((50, 60, 3), dtype=np.float32), "uint8"),
        (np.zeros((50, 60), dtype=np.uint8), r"\(H, W, 3\)"),
        (np.zeros((50, 60, 4), dtype=np.uint8), r"\(H, W, 3\)"),
        (np.zeros((0, 60, 3), dtype=np.uint8), "empty"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_images_rejected(finder_tracker: Tracker, image, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        finder_tracker.initialize(image, (1, 1, 5, 5))


@pytest.mark.parametrize(
    "box, message",
    [
        ((10, 10, 0, 5), "zero or negative size"),
        ((10, 10, math.nan, 5), "NaN"),
        ((500, 10, 5, 5), "outside"),
    ],
)
def test_bad_boxes_rejected(finder_tracker: Tracker, box, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        finder_tracker.initialize(np.zeros((50, 60, 3), np.uint8), box)


def test_box_partly_outside_is_clipped_at_initialisation(finder_tracker: Tracker) -> None:
    finder_tracker.initialize(np.zeros((50, 60, 3), np.uint8), (-4.0, 40.0, 10.0, 20.0))
    assert finder_tracker.box == (0.0, 40.0, 6.0, 10.0)


def test_track_before_initialise_and_after_reset() -> None:
    card = build_tiny("hcat").card
    tracker = Tracker(card, SquareFinderBackend(card))
    image, box = next(moving_square(1))
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track(image)
    tracker.initialize(image, box)
    tracker.track(image)
    tracker.reset()
    assert not tracker.initialized and tracker.box is None
    with pytest.raises(RuntimeError):
        tracker.track(image)
