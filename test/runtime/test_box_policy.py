"""The box policy: change penalty, size smoothing, the search for a lost target, and the
policy strings that select them."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import pytest
from runtime_helpers import FixedCandidates, SquareOracle, build_tiny, crop_box, square_scene

from ros_tracker.runtime.box_policy import apply_box_policy, parse_box_policy
from ros_tracker.runtime.decoders import make_decoder
from ros_tracker.runtime.motion_prior import TileScan, change_penalty, smoothed_size
from ros_tracker.runtime.tracker import Tracker
from ros_tracker.zoo.card import ModelCard

# -- motion prior -------------------------------------------------------------------------


def test_change_penalty_is_one_for_no_change_and_falls_with_size_and_aspect() -> None:
    previous = (0.2, 0.1)
    same = change_penalty(np.array([0.2]), np.array([0.1]), previous, k=0.2)
    assert same[0] == pytest.approx(1.0)
    sizes = np.array([0.2, 0.3, 0.4, 0.8])
    grown = change_penalty(sizes, sizes / 2, previous, k=0.2)
    assert np.all(np.diff(grown) < 0)
    # growing and shrinking by the same factor cost the same; so does a change of aspect
    # either way
    bigger = change_penalty(np.array([0.4]), np.array([0.2]), previous, k=0.2)
    smaller = change_penalty(np.array([0.1]), np.array([0.05]), previous, k=0.2)
    assert bigger[0] == pytest.approx(smaller[0])
    wider = change_penalty(np.array([0.4]), np.array([0.05]), (0.2, 0.1), k=0.2)
    taller = change_penalty(np.array([0.1]), np.array([0.2]), (0.2, 0.1), k=0.2)
    assert wider[0] < 1.0 and taller[0] < 1.0
    assert change_penalty(sizes, sizes, previous, k=0.0) == pytest.approx(np.ones(4))


def test_smoothed_size_moves_part_way() -> None:
    assert smoothed_size((10.0, 20.0), (30.0, 40.0), 0.25) == (15.0, 25.0)
    assert smoothed_size((10.0, 20.0), (30.0, 40.0), 1.0) == (30.0, 40.0)
    assert smoothed_size((10.0, 20.0), (30.0, 40.0), -1.0) == (10.0, 20.0)


def test_tile_scan_covers_the_image_nearest_first() -> None:
    width, height, side = 320, 200, 80.0
    scan = TileScan(width, height, side, start=(300.0, 180.0))
    centres = [scan.next() for _ in range(len(scan))]
    assert scan.next() == centres[0]  # it cycles
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    covered = np.zeros((height, width), dtype=bool)
    for cx, cy in centres:
        covered |= (np.abs(xs - cx) <= side / 2) & (np.abs(ys - cy) <= side / 2)
    assert covered.all()
    distances = [np.hypot(cx - 300.0, cy - 180.0) for cx, cy in centres]
    assert distances == sorted(distances)


def test_a_target_a_few_pixels_wide_keeps_its_size_above_the_floor() -> None:
    # A 5 px square: the reference trackers' 10 px floor doubles its sides; a card with a
    # lower floor keeps them, and no card lets a side fall under its floor.
    card = build_tiny("hcat").card
    image = square_scene((80.0, 60.0), 5.0)
    for floor, expected in ((10.0, 10.0), (2.0, 5.0)):
        tracker = Tracker(card.replace(min_box_side=floor), SquareOracle(card))
        tracker.initialize(image, (77.5, 57.5, 5.0, 5.0))
        _, _, w, h = tracker.track(image).box
        assert w == pytest.approx(expected, abs=0.5) and h == pytest.approx(expected, abs=0.5)
    shrinking = Tracker(card.replace(min_box_side=4.0), SquareOracle(card, scale=0.2))
    shrinking.initialize(image, (77.5, 57.5, 5.0, 5.0))
    assert min(shrinking.track(image).box[2:]) == pytest.approx(4.0)


# -- policy strings -----------------------------------------------------------------------


def test_policy_strings() -> None:
    assert parse_box_policy("card") == {}
    paper = {
        "scale_penalty": 0.0,
        "size_lr": 0.0,
        "redetect_after": 0,
        "appearance_weight": 0.0,
        "appearance_rerank": 0.0,
        "size_calibration": 0.0,
        "distractor_weight": 0.0,
        "box_refinement": 0.0,
        "match_weight": 0.0,
        "min_box_side": 10.0,
    }
    assert parse_box_policy("paper") == paper
    assert parse_box_policy("paper,scale_penalty=0.1") == dict(paper, scale_penalty=0.1)
    assert parse_box_policy("size_lr=0.4, redetect_after=10") == {
        "size_lr": 0.4,
        "redetect_after": 10,
    }
    card = build_tiny("hcat").card
    assert apply_box_policy(card, "scale_penalty=0.2").scale_penalty == 0.2
    assert apply_box_policy(card, "card") is card


@pytest.mark.parametrize(
    "text, message",
    [
        ("speed=3", "unknown setting 'speed'"),
        ("size_lr=fast", "size_lr needs a float"),
        ("size_lr=2", r"size_lr must be in \[0.0, 1.0\]"),
        ("redetect_after=1.5", "redetect_after needs a int"),
        ("scale_penalty=0.1,paper", "neither"),
    ],
)
def test_bad_policy_strings_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_box_policy(text)


# -- decoding with the change penalty -----------------------------------------------------


def _two_candidates(card: ModelCard) -> Dict[str, np.ndarray]:
    """HCAT outputs with two candidates: a same-size one (score 0.8) near the centre and a
    three times larger one (score 0.9) beside it."""
    grid = card.feature_size
    logits = np.full(grid * grid, -8.0)
    boxes = np.zeros((grid * grid, 4))
    same, large = (grid // 2) * grid + grid // 2, (grid // 2) * grid + grid // 2 + 1
    logits[same], logits[large] = np.log(0.8 / 0.2), np.log(0.9 / 0.1)
    boxes[same] = (0.5, 0.5, 0.25, 0.25)
    boxes[large] = (0.55, 0.5, 0.75, 0.75)
    return {"cls_logits": logits[None], "boxes": boxes[None]}


def test_penalty_prefers_the_candidate_that_keeps_the_size() -> None:
    card = build_tiny("hcat").card.replace(window_influence=0.0)
    outputs = _two_candidates(card)
    plain = make_decoder(card)(outputs, prior=(0.25, 0.25))
    assert plain.box[2] == pytest.approx(0.75) and plain.penalty == 1.0
    penalised = make_decoder(card.replace(scale_penalty=0.2))(outputs, prior=(0.25, 0.25))
    assert penalised.box[2] == pytest.approx(0.25)
    assert penalised.score == pytest.approx(0.8) and penalised.penalty == pytest.approx(1.0)


# -- the tracker: smoothing and the search for a lost target ------------------------------


def _scene(centre: Optional[Tuple[float, float]], size=(320, 240)) -> np.ndarray:
    if centre is None:
        return square_scene((-100.0, -100.0), 20.0, size)  # the square out of the image
    return square_scene(centre, 20.0, size)


def test_size_follows_a_wrong_estimate_only_gradually() -> None:
    card = build_tiny("hcat").card.replace(size_lr=0.3)
    tracker = Tracker(card, SquareOracle(card, scale=2.0))
    tracker.initialize(_scene((100.0, 100.0)), (90.0, 90.0, 20.0, 20.0))
    widths = [tracker.track(_scene((100.0, 100.0))).box[2] for _ in range(4)]
    assert widths[0] < 30.0  # one frame moves a third of the way at most
    assert all(a < b for a, b in zip(widths, widths[1:]))
    plain = Tracker(card.replace(size_lr=0.0), SquareOracle(card, scale=2.0))
    plain.initialize(_scene((100.0, 100.0)), (90.0, 90.0, 20.0, 20.0))
    assert plain.track(_scene((100.0, 100.0))).box[2] == pytest.approx(40.0, abs=2.0)


def test_a_lost_target_is_found_again_anywhere_in_the_image() -> None:
    card = build_tiny("hcat").card.replace(redetect_after=3, redetect_threshold=0.3)
    oracle = SquareOracle(card)
    tracker = Tracker(card, oracle)
    tracker.initialize(_scene((60.0, 60.0)), (50.0, 50.0, 20.0, 20.0))
    assert tracker.track(_scene((62.0, 61.0))).score > 0.9
    last_good = tracker.box
    # gone for a while: weak frames, then the search; the box stays where it was last good
    results = [tracker.track(_scene(None)) for _ in range(12)]
    assert all(r.score < 0.3 for r in results)
    assert [r.searching for r in results[:3]] == [False, False, False]
    assert all(r.searching for r in results[3:])
    assert all(r.box == last_good for r in results[3:])
    # back far away, in the opposite corner: found within one scan of the image (regions of
    # side 4 x 20 px at half-side steps, every other frame)
    step = card.search_factor * 20.0 / 2
    most_regions = (320 // step + 2) * (240 // step + 2)
    for _ in range(int(2 * most_regions) + 2):
        result = tracker.track(_scene((270.0, 200.0)))
        if not result.searching and result.score > 0.9:
            break
    else:
        pytest.fail("the target was not found again within one scan")
    centre = (result.box[0] + result.box[2] / 2, result.box[1] + result.box[3] / 2)
    assert centre == pytest.approx((270.0, 200.0), abs=2.0)
    # and then followed normally
    assert tracker.track(_scene((273.0, 201.0))).score > 0.9


def test_without_redetection_the_tracker_never_searches() -> None:
    card = build_tiny("hcat").card
    assert card.redetect_after == 0 and card.scale_penalty == 0.0 and card.size_lr == 0.0
    tracker = Tracker(card, SquareOracle(card))
    tracker.initialize(_scene((60.0, 60.0)), (50.0, 50.0, 20.0, 20.0))
    assert not any(tracker.track(_scene(None)).searching for _ in range(8))


# -- the confidence: does the box still look like the target? -------------------------------


def _patterned_scene(pattern: str, size=(320, 240)) -> np.ndarray:
    """Dark noise (too little red for the oracle) with a 24 px square at (100, 80): red with a
    blue checkerboard ("target") or pale grey stripes ("other"): the oracle finds either."""
    rng = np.random.default_rng(4)
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = rng.integers(0, 120, (height, width))
    image[..., 1] = rng.integers(0, 120, (height, width))
    image[..., 2] = rng.integers(0, 30, (height, width))
    yy, xx = np.mgrid[0:24, 0:24]
    square = np.zeros((24, 24, 3), np.uint8)
    square[..., 2] = 250
    if pattern == "none":
        return image
    if pattern == "target":
        square[..., 0] = np.where((yy // 6 + xx // 6) % 2 == 0, 220, 0)
    else:
        square[..., 0] = square[..., 1] = np.where(xx % 8 < 4, 250, 200)
    image[80:104, 100:124] = square
    return image


def test_the_confidence_falls_when_the_box_shows_something_else() -> None:
    box = (100.0, 80.0, 24.0, 24.0)
    target, other = _patterned_scene("target"), _patterned_scene("other")
    card = build_tiny("hcat").card
    plain = Tracker(card, SquareOracle(card))
    plain.initialize(target, box)
    # the network (here the oracle) is as sure of the other object as of the target
    assert plain.track(target).score > 0.9 and plain.track(other).score > 0.9
    checked = Tracker(card.replace(appearance_weight=1.0), SquareOracle(card))
    checked.initialize(target, box)
    assert checked.track(target).score > 0.9
    assert checked.track(other).score < 0.3
    assert checked.box == pytest.approx(plain.box, abs=0.5)  # the box itself is unchanged
    half = Tracker(card.replace(appearance_weight=0.5), SquareOracle(card))
    half.initialize(target, box)
    assert 0.45 < half.track(other).score < 0.7


def test_appearance_check_compares_with_the_box_it_was_started_on() -> None:
    from ros_tracker.runtime.appearance_check import AppearanceCheck, checked_confidence

    check = AppearanceCheck()
    with pytest.raises(RuntimeError, match="before start"):
        check.similarity(_patterned_scene("target"), (0.0, 0.0, 10.0, 10.0))
    target = _patterned_scene("target")
    check.start(target, (100.0, 80.0, 24.0, 24.0))
    assert check.similarity(target, (100.0, 80.0, 24.0, 24.0)) == pytest.approx(1.0)
    # the same target a little brighter, and the box a pixel off: still the target
    brighter = np.clip(target.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    assert check.similarity(brighter, (101.0, 80.0, 24.0, 24.0)) > 0.6
    assert check.similarity(target, (200.0, 150.0, 24.0, 24.0)) < 0.3  # background
    assert check.similarity(target, (100.0, 80.0, 0.0, 0.0)) == 0.0  # an empty box
    assert check.similarity(target, (float("nan"), 80.0, 24.0, 24.0)) == 0.0
    assert checked_confidence(0.8, 0.5, 0.0) == pytest.approx(0.8)
    assert checked_confidence(0.8, 0.5, 1.0) == pytest.approx(0.4)


def test_candidates_are_distinct_and_ranked() -> None:
    card = build_tiny("hcat").card.replace(window_influence=0.0)
    grid = card.feature_size
    logits = np.full(grid * grid, -8.0)
    boxes = np.tile([0.1, 0.1, 0.1, 0.1], (grid * grid, 1))
    # two cells on one object (same box), one on a second object, one too weak to count
    for cell, logit, box in (
        (10, 3.0, (0.3, 0.3, 0.2, 0.2)),
        (11, 2.5, (0.3, 0.3, 0.2, 0.2)),
        (40, 2.0, (0.7, 0.6, 0.2, 0.2)),
        (50, -1.0, (0.9, 0.9, 0.2, 0.2)),
    ):
        logits[cell], boxes[cell] = logit, box
    outputs = {"cls_logits": logits[None], "boxes": boxes[None]}
    decoder = make_decoder(card)
    found = decoder.candidates(outputs, count=5, min_ratio=0.5)
    assert [c.box[:2] for c in found] == [(0.3, 0.3), (0.7, 0.6)]
    assert found[0].ranking > found[1].ranking
    assert found[0] == decoder(outputs)  # the first candidate is the plain pick
    assert len(decoder.candidates(outputs, count=1)) == 1


def test_appearance_rerank_prefers_the_candidate_that_looks_like_the_target() -> None:
    start = (100.0, 80.0, 24.0, 24.0)
    first_frame = _patterned_scene("target")
    # next frame: the target moved left, another object of its size stands to the right
    frame = _patterned_scene("none")
    frame[80:104, 76:100] = first_frame[80:104, 100:124]
    frame[80:104, 124:148] = _patterned_scene("other")[80:104, 100:124]
    card = build_tiny("hcat").card.replace(window_influence=0.0)
    # the network prefers the other object
    other = crop_box(card, start, (124.0, 80.0, 24.0, 24.0))
    target = crop_box(card, start, (76.0, 80.0, 24.0, 24.0))
    plain = Tracker(card, FixedCandidates(card, [other, target]))
    plain.initialize(first_frame, start)
    assert plain.track(frame).box[0] == pytest.approx(124.0, abs=0.5)
    checked = Tracker(card.replace(appearance_rerank=0.8), FixedCandidates(card, [other, target]))
    checked.initialize(first_frame, start)
    assert checked.track(frame).box[0] == pytest.approx(76.0, abs=0.5)


def test_appearance_rerank_needs_a_decoder_with_candidates() -> None:
    card = build_tiny("hit").card.replace(appearance_rerank=0.5)
    with pytest.raises(ValueError, match="appearance_rerank needs"):
        Tracker(card, SquareOracle(card))


def _target_and_look_alike(target_x: int) -> np.ndarray:
    """The target pattern at (target_x, 80) and a look-alike (the same pattern shifted by 3
    px: likeness about 0.88) standing still at (150, 80)."""
    source = _patterned_scene("target")
    frame = _patterned_scene("none")
    frame[80:104, target_x : target_x + 24] = source[80:104, 100:124]
    frame[80:104, 150:174] = np.roll(source[80:104, 100:124], 3, axis=1)
    return frame


def test_a_look_alike_seen_at_initialisation_loses_to_the_target() -> None:
    start = (100.0, 80.0, 24.0, 24.0)
    first_frame, frame = _target_and_look_alike(100), _target_and_look_alike(76)
    card = build_tiny("hcat").card.replace(window_influence=0.0, appearance_rerank=0.8)

    # the network ranks the look-alike first in both frames; the second candidate is where
    # the target moves to (background on the first frame)
    def oracle() -> FixedCandidates:
        look_alike = crop_box(card, start, (150.0, 80.0, 24.0, 24.0))
        return FixedCandidates(card, [look_alike, crop_box(card, start, (76.0, 80.0, 24.0, 24.0))])

    plain = Tracker(card, oracle())
    plain.initialize(first_frame, start)
    assert plain.track(frame).box[0] == pytest.approx(150.0, abs=0.5)  # too alike
    aware = Tracker(card.replace(distractor_weight=2.0), oracle())
    aware.initialize(first_frame, start)
    assert aware._appearance is not None and aware._appearance.distractors == 2
    assert aware.track(frame).box[0] == pytest.approx(76.0, abs=0.5)


def test_a_candidate_a_little_off_the_target_is_judged_where_it_would_be_refined() -> None:
    # The network ranks a look-alike first and puts its second candidate 5 px beside the
    # target: compared where it stands, that box looks less like the target than the
    # look-alike does; compared where the refinement would move it, it is the target.
    start = (100.0, 80.0, 24.0, 24.0)
    first_frame = _patterned_scene("target")
    frame = _target_and_look_alike(76)
    card = build_tiny("hcat").card.replace(window_influence=0.0, appearance_rerank=0.8)

    def oracle() -> FixedCandidates:
        look_alike = crop_box(card, start, (150.0, 80.0, 24.0, 24.0))
        beside = crop_box(card, start, (81.0, 80.0, 24.0, 24.0))
        return FixedCandidates(card, [look_alike, beside], (3.0, 2.5))

    plain = Tracker(card, oracle())
    plain.initialize(first_frame, start)
    assert plain.track(frame).box[0] == pytest.approx(150.0, abs=0.5)
    refined = Tracker(card.replace(box_refinement=0.6), oracle())
    refined.initialize(first_frame, start)
    assert refined.track(frame).box[0] == pytest.approx(76.0, abs=1.0)


def test_distinct_similarity_discounts_what_looks_more_like_a_distractor() -> None:
    from ros_tracker.runtime.appearance_check import AppearanceCheck

    frame = _target_and_look_alike(100)
    target, look_alike = (100.0, 80.0, 24.0, 24.0), (150.0, 80.0, 24.0, 24.0)
    check = AppearanceCheck()
    check.start(frame, target)
    plain = check.similarity(frame, look_alike)
    assert check.distinct_similarity(frame, look_alike, 1.0) == pytest.approx(plain)
    check.add_distractor(frame, look_alike)
    assert check.distinct_similarity(frame, look_alike, 1.0) == pytest.approx(2 * plain - 1)
    assert check.distinct_similarity(frame, look_alike, 0.0) == pytest.approx(plain)
    assert check.distinct_similarity(frame, target, 1.0) == pytest.approx(1.0)
    check.add_distractor(frame, (0.0, 0.0, 0.0, 5.0))  # an empty box is not kept
    assert check.distractors == 1
    check.start(frame, target)  # a new target forgets the old distractors
    assert check.distractors == 0


def test_distractor_weight_needs_appearance_rerank() -> None:
    card = build_tiny("hcat").card.replace(distractor_weight=1.0)
    with pytest.raises(ValueError, match="distractor_weight acts through appearance_rerank"):
        Tracker(card, SquareOracle(card))
