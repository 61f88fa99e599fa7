from __future__ import annotations

import math

import pytest

from ros_tracker.runtime.box_validation import require_initial_box, validate_initial_box

IMAGE = (640, 480)


def test_box_inside_is_accepted_unchanged() -> None:
    check = validate_initial_box((10.5, 20.0, 30.0, 40.25), IMAGE)
    assert check.ok and not check.clipped
    assert check.box == (10.5, 20.0, 30.0, 40.25)


@pytest.mark.parametrize(
    "box, words",
    [
        ((math.nan, 0, 10, 10), "NaN or infinite"),
        ((0, 0, math.inf, 10), "NaN or infinite"),
        ((0, 0, 0, 10), "zero or negative size"),
        ((0, 0, 10, -5), "zero or negative size"),
        ((700, 10, 20, 20), "entirely outside"),
        ((-50, -50, 50, 50), "entirely outside"),  # touches the corner only
        ((1, 2, 3), "four numbers"),
        (("a", 2, 3, 4), "four numbers"),
    ],
)
def test_rejections_say_why(box, words) -> None:
    check = validate_initial_box(box, IMAGE)
    assert not check.ok and check.box is None
    assert words in check.reason


def test_box_partly_outside_is_clipped() -> None:
    check = validate_initial_box((-10.0, 470.0, 30.0, 20.0), IMAGE)
    assert check.ok and check.clipped
    assert check.box == (0.0, 470.0, 20.0, 10.0)


def test_empty_image_rejected() -> None:
    assert "no pixels" in validate_initial_box((0, 0, 1, 1), (0, 480)).reason


def test_require_raises_value_error_with_reason() -> None:
    with pytest.raises(ValueError, match="zero or negative size"):
        require_initial_box((5, 5, 0, 0), IMAGE)
    assert require_initial_box((600, 0, 100, 10), IMAGE) == (600.0, 0.0, 40.0, 10.0)


@pytest.mark.parametrize(
    "box",
    [
        (0.1, 0.7, 0.2, 0.1),  # (0.1 + 0.2) - 0.1 != 0.2 in floating point
        (318.7, 116.3, 36.6, 41.4),  # a centre/size request converted back to a corner box
        (0.0, 0.0, 640.0, 480.0),  # the whole image
    ],
)
def test_box_inside_is_never_called_clipped(box) -> None:
    check = validate_initial_box(box, IMAGE)
    assert check.ok and not check.clipped, check
    assert check.box == box


def test_box_inside_after_centre_size_round_trip_is_not_clipped() -> None:
    # What the SetTarget service does: centre and size in, corner box out.
    centre_x, centre_y, size_x, size_y = 337.0, 137.0, 36.6, 41.4
    box = (centre_x - size_x / 2.0, centre_y - size_y / 2.0, size_x, size_y)
    assert not validate_initial_box(box, IMAGE).clipped
