"""Box refinement: the box moved onto the target's first look, only where it matches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from runtime_helpers import FixedCandidates, build_tiny, crop_box

from ros_tracker.runtime.box_policy import parse_box_policy
from ros_tracker.runtime.box_refinement import SCALE_RATE, SCALE_STEP, SIDE, BoxRefinement
from ros_tracker.runtime.tracker import Tracker


def _textured(seed: int, size=(320, 240)) -> np.ndarray:
    """Smooth random texture: every patch differs from every other."""
    rng = np.random.default_rng(seed)
    width, height = size
    noise = rng.integers(0, 255, (height // 4, width // 4, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(noise, np.ones((4, 4, 1), dtype=np.uint8)))


def _moved(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(np.roll(image, dy, axis=0), dx, axis=1)


@pytest.mark.parametrize("box", [(100.0, 80.0, 11.0, 31.0), (60.0, 50.0, 120.0, 90.0)])
def test_a_box_a_little_off_is_moved_onto_the_target(box) -> None:
    first = _textured(1)
    refinement = BoxRefinement(0.6)
    refinement.start(first, box)
    # the scene moved by a fifth of the box's size right and up; the box the network gave is
    # where the target was
    dx, dy = int(round(0.2 * box[2])), -int(round(0.2 * box[3]))
    later = _moved(first, dx, dy)
    x, y, w, h = refinement.refine(later, box)
    assert (x - box[0], y - box[1]) == pytest.approx((dx, dy), abs=1.0 + 0.03 * box[2])
    step = SCALE_STEP * SCALE_RATE  # at most one step of the size a frame
    assert 1 - step - 1e-9 <= w / box[2] <= 1 + step + 1e-9 and w / box[2] == h / box[3]
    assert refinement.last_match > 0.8


def test_a_finely_textured_target_matches_itself_sampled_off_grid() -> None:
    # Pixel-fine texture compared at a fifth of its resolution, from boxes handed in a little
    # off in every phase of the match grid: the first look and the window are low-passed
    # before sampling, or the same patch sampled a fraction of a step apart no longer
    # correlates (0.15 here) and the box stays where it was handed in.
    image = np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    target = (100.4, 40.0, 40.0, 160.0)
    for dx in np.linspace(-8.0, 8.0, 9):
        refinement = BoxRefinement(0.6)
        refinement.start(image, target)
        x, y, _, _ = refinement.refine(image, (target[0] + dx, target[1] - 0.4 * dx, 40.0, 160.0))
        assert refinement.last_match > 0.6
        assert (x, y) == pytest.approx(target[:2], abs=160.0 / SIDE)  # one match pixel


def test_a_target_that_grew_grows_the_box() -> None:
    box = (100.0, 70.0, 120.0, 90.0)
    first = cv2.GaussianBlur(_textured(5), (9, 9), 3)
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    zoom = 1.0 + SCALE_STEP
    matrix = np.float32([[zoom, 0, cx * (1 - zoom)], [0, zoom, cy * (1 - zoom)]])
    later = cv2.warpAffine(first, matrix, (320, 240), borderMode=cv2.BORDER_REPLICATE)
    refinement = BoxRefinement(0.6)
    refinement.start(first, box)
    x, y, w, h = refinement.refine(later, box)
    assert w / box[2] == pytest.approx(1 + SCALE_RATE * SCALE_STEP)
    assert (x + w / 2, y + h / 2) == pytest.approx((cx, cy), abs=box[2] / SIDE)  # a match pixel
    shrunk = cv2.warpAffine(
        first,
        np.float32([[1 / zoom, 0, cx * (1 - 1 / zoom)], [0, 1 / zoom, cy * (1 - 1 / zoom)]]),
        (320, 240),
        borderMode=cv2.BORDER_REPLICATE,
    )
    assert refinement.refine(shrunk, box)[2] / box[2] == pytest.approx(1 - SCALE_RATE * SCALE_STEP)


def test_a_poor_match_leaves_the_box_alone() -> None:
    box = (100.0, 80.0, 40.0, 40.0)
    refinement = BoxRefinement(0.6)
    refinement.start(_textured(1), box)
    elsewhere = _textured(2)  # another scene: nothing here looks like the target
    assert refinement.refine(elsewhere, box) == box
    assert refinement.last_match < 0.6
    flat = np.full((240, 320, 3), 90, np.uint8)  # no texture: no correlation at all
    assert refinement.refine(flat, box) == box
    assert refinement.refine(_textured(1), (1.0, 2.0, 0.0, 5.0)) == (1.0, 2.0, 0.0, 5.0)


@pytest.mark.parametrize(
    "box",
    [(300.0, 200.0, 160.0, 120.0), (-400.0, -300.0, 160.0, 120.0), (500.0, 60.0, 80.0, 60.0)],
)
def test_a_box_reaching_or_lying_past_the_border_is_compared_with_the_border_repeated(box):
    image = _textured(1)
    refinement = BoxRefinement(0.6)
    refinement.start(image, (100.0, 80.0, 80.0, 60.0))
    refined, match = refinement.refined(image, box)
    assert np.isfinite(refined).all()
    assert refined == box or match >= 0.6  # moved only on a match


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="box_refinement"):
        BoxRefinement(0.0)
    with pytest.raises(RuntimeError, match="before start"):
        BoxRefinement(0.5).refine(_textured(1), (10.0, 10.0, 20.0, 20.0))
    assert parse_box_policy("paper")["box_refinement"] == 0.0
    assert parse_box_policy("box_refinement=0.7") == {"box_refinement": 0.7}


def test_the_tracker_refines_the_networks_centre() -> None:
    """A network (the oracle) that puts its box 5 px right of the target: the refined tracker
    reports the target's own place; a plain one reports the network's."""
    card = build_tiny("hcat").card.replace(window_influence=0.0)
    scene = _textured(3)
    start = (140.0, 90.0, 30.0, 30.0)
    off = crop_box(card, start, (145.0, 90.0, 30.0, 30.0))
    plain = Tracker(card, FixedCandidates(card, [off], logits=(4.0,)))
    plain.initialize(scene, start)
    assert plain.track(scene).box[0] == pytest.approx(145.0, abs=0.5)
    refined = Tracker(card.replace(box_refinement=0.6), FixedCandidates(card, [off], (4.0,)))
    refined.initialize(scene, start)
    assert refined.track(scene).box[0] == pytest.approx(140.0, abs=1.0)


def test_the_confidence_falls_when_the_first_look_matches_nowhere() -> None:
    card = build_tiny("hcat").card.replace(window_influence=0.0, box_refinement=0.6)
    start = (140.0, 90.0, 30.0, 30.0)
    scene, other = _textured(3), _textured(6)  # the next frame shows something else
    there = crop_box(card, start, start)
    scores = {}
    for weight in (0.0, 0.5):
        tracker = Tracker(card.replace(match_weight=weight), FixedCandidates(card, [there], (4.0,)))
        tracker.initialize(scene, start)
        found = tracker.track(scene).score
        scores[weight] = (found, tracker.track(other).score)
    assert scores[0.0][0] == pytest.approx(scores[0.0][1])  # the network is as sure of both
    assert scores[0.5][0] > 0.9 * scores[0.0][0]  # the same scene: a close match, kept
    assert scores[0.5][1] < 0.8 * scores[0.0][1]  # no match: the confidence falls
    with pytest.raises(ValueError, match="match_weight needs box_refinement"):
        Tracker(
            card.replace(box_refinement=0.0, match_weight=0.5),
            FixedCandidates(card, [there], (4.0,)),
        )
