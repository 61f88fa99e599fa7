"""MixFormerV2's score-gated online template update, on a real tiny network.

``ScriptedScoreBackend`` runs the real TorchBackend and only replaces the score logit with a
scripted value per frame, so the test decides which frames are confident.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np
import pytest
from runtime_helpers import build_tiny

from ros_tracker.runtime.backends.base import InferenceBackend
from ros_tracker.runtime.backends.torch_backend import TorchBackend
from ros_tracker.runtime.crops import CropPreprocessor
from ros_tracker.runtime.tracker import Tracker


class ScriptedScoreBackend(InferenceBackend):
    """Real backend whose score output is replaced by scripted confidences, frame by frame;
    records every template set it is given."""

    def __init__(self, inner: InferenceBackend, scores: Sequence[float]) -> None:
        super().__init__(inner.card)
        self.inner = inner
        self.name = inner.name
        self.scores = list(scores)
        self.frame = 0
        self.template_sets: List[Dict[str, np.ndarray]] = []

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        self.template_sets.append({k: v.copy() for k, v in templates.items()})
        self.inner.set_template(templates)

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        outputs = dict(self.inner.run_search(search))
        p = self.scores[self.frame]
        self.frame += 1
        logit = 0.0 if p == 0.5 else math.log(p / (1.0 - p))
        outputs["score_logit"] = np.array([[logit]], dtype=np.float32)
        return outputs


def frames(count: int) -> List[np.ndarray]:
    """Distinct images, so each frame's template crop can be told apart."""
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8) for _ in range(count + 1)]


def run(scores: Sequence[float], interval: int = 4):
    network = build_tiny("mixformerv2")
    card = network.card.replace(template_update_interval=interval, template_update_threshold=0.5)
    backend = ScriptedScoreBackend(TorchBackend(card, network), scores)
    tracker = Tracker(card, backend)
    images = frames(len(scores))
    crop = CropPreprocessor(card.template_size, card.template_factor, card.mean, card.std)
    tracker.initialize(images[0], (50.0, 30.0, 24.0, 20.0))
    expected_crops = [crop(images[0], tracker.box)[0].copy()]
    for image in images[1:]:
        tracker.track(image)
        # The crop a frame would contribute: the template region around its new estimate.
        expected_crops.append(crop(image, tracker.box)[0].copy())
    return tracker, backend, expected_crops


def test_best_confident_crop_is_swapped_in_at_each_interval() -> None:
    scores = [
        0.30, 0.80, 0.95, 0.60,  # frame 4 swaps in frame 3's crop (best above 0.5)
        0.50, 0.20, 0.10, 0.45,  # nothing above 0.5: frame 8 brings the initial one back
        0.70, 0.99, 0.20, 0.30,  # frame 12 swaps in frame 10's crop
    ]  # fmt: skip
    tracker, backend, crops = run(scores)
    sets = backend.template_sets
    assert len(sets) == 4  # initialisation + frames 4, 8, 12; nothing in between
    assert tracker.online_template_swaps == 3
    for template_set in sets:  # the first template never changes
        np.testing.assert_array_equal(template_set["template"], crops[0])
    np.testing.assert_array_equal(sets[0]["online_template"], crops[0])
    np.testing.assert_array_equal(sets[1]["online_template"], crops[3])
    np.testing.assert_array_equal(sets[2]["online_template"], crops[0])
    np.testing.assert_array_equal(sets[3]["online_template"], crops[10])


def test_no_confident_frame_and_nothing_to_change_means_no_template_work() -> None:
    tracker, backend, _ = run([0.1, 0.4, 0.5, 0.2, 0.3, 0.2, 0.1, 0.01], interval=4)
    assert len(backend.template_sets) == 1 and tracker.online_template_swaps == 0


def test_interval_zero_never_updates() -> None:
    tracker, backend, _ = run([0.9] * 6, interval=0)
    assert len(backend.template_sets) == 1


def test_the_swap_reaches_the_network() -> None:
    """After a swap the real network sees the new online template: its outputs change."""
    tracker, backend, crops = run([0.9, 0.2], interval=2)
    assert len(backend.template_sets) == 2
    search = np.zeros((1, 3, tracker.card.search_size, tracker.card.search_size), np.float32)
    after = backend.inner.run_search(search)["box_logits"]
    backend.inner.set_template(backend.template_sets[0])
    before = backend.inner.run_search(search)["box_logits"]
    assert not np.allclose(before, after)


def test_reinitialise_restarts_the_online_template() -> None:
    tracker, backend, crops = run([0.9, 0.9, 0.9, 0.9], interval=4)
    assert tracker.online_template_swaps == 1
    image = frames(1)[0]
    tracker.initialize(image, (10.0, 10.0, 20.0, 20.0))
    assert tracker.online_template_swaps == 0
    last = backend.template_sets[-1]
    np.testing.assert_array_equal(last["online_template"], last["template"])


@pytest.mark.parametrize("threshold, score", [(0.5, 0.5), (0.9, 0.9 - 1e-4)])
def test_scores_at_or_under_the_threshold_are_never_candidates(
    threshold: float, score: float
) -> None:
    network = build_tiny("mixformerv2")
    card = network.card.replace(template_update_interval=2, template_update_threshold=threshold)
    backend = ScriptedScoreBackend(TorchBackend(card, network), [score, score])
    tracker = Tracker(card, backend)
    images = frames(2)
    tracker.initialize(images[0], (50.0, 30.0, 24.0, 20.0))
    for image in images[1:]:
        tracker.track(image)
    assert len(backend.template_sets) == 1
