"""Size calibration: box sizes corrected by what the network got wrong on the first frame."""

from __future__ import annotations

import math

import pytest
from runtime_helpers import SquareOracle, build_tiny, square_scene

from ros_tracker.runtime.box_policy import parse_box_policy
from ros_tracker.runtime.decoders import Decoded
from ros_tracker.runtime.size_calibration import MAX_FACTOR, SizeCalibration, view_boxes
from ros_tracker.runtime.tracker import Tracker

START = (90.0, 90.0, 20.0, 20.0)  # the square of square_scene((100, 100), 20)


def _scene():
    return square_scene((100.0, 100.0), 20.0, (320, 240))


def _biased(w_factor: float, h_factor: float):
    """An estimator that finds the target's centre but gets its sides wrong by the factors."""

    def estimate(around):
        x, y, w, h = START
        cx, cy = x + w / 2, y + h / 2
        return (cx - w * w_factor / 2, cy - h * h_factor / 2, w * w_factor, h * h_factor)

    return estimate


def test_factors_undo_a_consistent_bias() -> None:
    calibration = SizeCalibration(1.0)
    calibration.fit(START, _biased(1.5, 0.8))
    assert calibration.factors == pytest.approx((1 / 1.5, 1 / 0.8))
    half = SizeCalibration(0.5)
    half.fit(START, _biased(1.5, 0.8))
    assert half.factors == pytest.approx((math.sqrt(1 / 1.5), math.sqrt(1 / 0.8)))
    off = SizeCalibration(0.0)
    off.fit(START, _biased(1.5, 0.8))
    assert off.factors == (1.0, 1.0)
    # absurd estimates are clamped: a factor beyond MAX_FACTOR is noise, not a bias
    calibration.fit(START, _biased(100.0, 0.001))
    assert calibration.factors == pytest.approx((1 / MAX_FACTOR, MAX_FACTOR))


def test_views_surround_the_box_and_the_median_ignores_an_outlier() -> None:
    views = view_boxes(START)
    assert len(views) >= 3 and views[0] == pytest.approx(START)
    assert len({(round(v[0], 3), round(v[1], 3), round(v[2], 3)) for v in views}) == len(views)
    answers = iter([(0, 0, 30.0, 16.0)] * (len(views) - 1) + [(0, 0, 2000.0, 1.0)])
    calibration = SizeCalibration(1.0)
    calibration.fit(START, lambda around: next(answers))
    assert calibration.factors == pytest.approx((20 / 30, 20 / 16))


def test_unusable_estimates_leave_sizes_alone() -> None:
    calibration = SizeCalibration(1.0)
    for broken in (None, (0.0, 0.0, 0.0, 10.0), (0.0, 0.0, float("nan"), 10.0)):
        calibration.fit(START, lambda around, b=broken: b)
        assert calibration.factors == (1.0, 1.0)
    with pytest.raises(ValueError, match="size_calibration"):
        SizeCalibration(1.5)


def test_prior_and_estimate_convert_between_the_networks_units_and_the_targets() -> None:
    calibration = SizeCalibration(1.0)
    calibration.fit(START, _biased(2.0, 0.5))
    raw = Decoded(box=(0.5, 0.5, 0.4, 0.1), score=0.9, penalty=0.7, ranking=0.6)
    fixed = calibration.corrected(raw)
    assert fixed.box == pytest.approx((0.5, 0.5, 0.2, 0.2))
    assert (fixed.score, fixed.penalty, fixed.ranking) == (0.9, 0.7, 0.6)
    assert calibration.network_prior((0.2, 0.2)) == pytest.approx((0.4, 0.1))
    assert calibration.network_prior(None) is None


def test_the_tracker_reports_the_true_size_of_a_target_the_network_misjudges() -> None:
    card = build_tiny("hcat").card.replace(size_lr=1.0)  # boxes take the estimate as it is
    plain = Tracker(card, SquareOracle(card, scale=(2.0, 0.75)))
    plain.initialize(_scene(), START)
    assert plain.track(_scene()).box[2:] == pytest.approx((40.0, 15.0), abs=1.0)
    calibrated_card = card.replace(size_calibration=1.0, scale_penalty=0.5)
    oracle = SquareOracle(card, scale=(2.0, 0.75))
    calibrated = Tracker(calibrated_card, oracle)
    calibrated.initialize(_scene(), START)
    for _ in range(3):
        result = calibrated.track(_scene())
        assert result.box[2:] == pytest.approx((20.0, 20.0), abs=1.0)
        assert result.score > 0.9  # the penalty compares like with like: no change, no cost


class CountingOracle(SquareOracle):
    """SquareOracle that counts its search inferences."""

    def __init__(self, card) -> None:
        super().__init__(card)
        self.searches = 0

    def run_search(self, search):
        self.searches += 1
        return super().run_search(search)


def test_initialisation_searches_each_region_once() -> None:
    # The calibration's first view and the distractor search look at the same region.
    card = build_tiny("hcat").card.replace(
        size_calibration=1.0, appearance_rerank=0.8, distractor_weight=1.0
    )
    oracle = CountingOracle(card)
    tracker = Tracker(card, oracle)
    tracker.initialize(_scene(), START)
    assert oracle.searches == len(view_boxes(START))
    assert tracker.track(_scene()).box == pytest.approx(START, abs=1.0)
    assert oracle.searches == len(view_boxes(START)) + 1


def test_calibration_is_a_policy_setting_the_papers_leave_off() -> None:
    assert parse_box_policy("paper")["size_calibration"] == 0.0
    assert parse_box_policy("size_calibration=0.5") == {"size_calibration": 0.5}
    with pytest.raises(ValueError, match="size_calibration must be in"):
        parse_box_policy("size_calibration=2")
    assert build_tiny("hcat").card.size_calibration == 0.0
