from __future__ import annotations

import pytest

from ros_tracker.runtime.boxes import clamp_centre, clip_with_margin, intersect_image

W, H = 200, 100


def test_margin_clip_inside_box_unchanged() -> None:
    assert clip_with_margin((20.0, 30.0, 40.0, 20.0), W, H) == (20.0, 30.0, 40.0, 20.0)


@pytest.mark.parametrize(
    "box, expected",
    [
        ((-30.0, 10.0, 40.0, 20.0), (0.0, 10.0, 10.0, 20.0)),  # mostly left of the image
        ((195.0, 10.0, 40.0, 20.0), (190.0, 10.0, 10.0, 20.0)),  # right border, margin kept
        ((-50.0, -50.0, 20.0, 20.0), (0.0, 0.0, 10.0, 10.0)),  # entirely outside
        ((50.0, 50.0, 2.0, 3.0), (50.0, 50.0, 10.0, 10.0)),  # minimum size
        ((-10.0, -10.0, 300.0, 300.0), (0.0, 0.0, 200.0, 100.0)),  # larger than the image
    ],
)
def test_margin_clip_rule(box, expected) -> None:
    clipped = clip_with_margin(box, W, H)
    assert clipped == pytest.approx(expected)
    x, y, w, h = clipped
    assert x >= 0 and y >= 0 and x + w <= W and y + h <= H


def test_centre_clamp_keeps_size_of_a_target_partly_outside() -> None:
    # Centre at x = 195 (inside), box sticking out on the right: unchanged.
    assert clamp_centre((175.0, 40.0, 40.0, 20.0), W, H) == (175.0, 40.0, 40.0, 20.0)
    # Centre outside -> moved onto the border; tiny size -> 10 px; huge -> image size.
    assert clamp_centre((230.0, 40.0, 4.0, 20.0), W, H) == (195.0, 40.0, 10.0, 20.0)
    assert clamp_centre((0.0, 0.0, 500.0, 50.0), W, H) == (100.0, 0.0, 200.0, 50.0)


def test_intersection() -> None:
    assert intersect_image((-5.0, 90.0, 10.0, 20.0), W, H) == (0.0, 90.0, 5.0, 10.0)
    assert intersect_image((300.0, 0.0, 10.0, 10.0), W, H)[2] == 0.0
