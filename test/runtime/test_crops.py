from __future__ import annotations

import math

import numpy as np
import pytest

from ros_tracker.runtime.crops import (
    CropPreprocessor,
    CropTransform,
    Normalizer,
    context_region,
    crop_around,
    mean_colour,
)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def gaussian_blob(width: int, height: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    """BGR image with a smooth bright spot centred at continuous (cx, cy)."""
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    spot = np.exp(-((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) / (2 * sigma**2))
    image = np.repeat((spot * 250.0).round().astype(np.uint8)[:, :, None], 3, axis=2)
    return image


def weighted_centre(plane: np.ndarray) -> tuple:
    """Intensity centroid in continuous pixel coordinates (pixel i centred at i + 0.5)."""
    weights = plane.astype(np.float64)
    weights[weights < 20] = 0.0  # ignore the faint tails cut by resampling
    ys, xs = np.mgrid[0 : plane.shape[0], 0 : plane.shape[1]]
    total = weights.sum()
    return ((xs + 0.5) * weights).sum() / total, ((ys + 0.5) * weights).sum() / total


def test_context_region_is_centred_square_of_geometric_mean_side() -> None:
    region = context_region((10.0, 20.0, 40.0, 10.0), factor=4.0, output_size=256)
    assert region.side == pytest.approx(math.sqrt(400.0) * 4.0)
    assert region.to_image(0.5, 0.5) == pytest.approx((30.0, 25.0))
    assert region.scale == pytest.approx(256 / 80.0)


def test_transform_round_trip() -> None:
    region = CropTransform(x0=-12.3, y0=40.7, side=77.7, output_size=128)
    for x, y in [(0.0, 0.0), (13.25, 99.5), (-40.0, 300.0)]:
        u, v = region.to_crop(x, y)
        assert region.to_image(u, v) == pytest.approx((x, y))


def test_affine_matrix_agrees_with_the_transform() -> None:
    """cv2's index convention: crop index = M @ image index, centres at integers."""
    region = CropTransform(x0=5.5, y0=-3.25, side=41.0, output_size=64)
    matrix = region.matrix()
    for x, y in [(5.5, -3.25), (20.0, 10.0), (46.5, 37.75)]:
        u_idx, v_idx = matrix @ np.array([x - 0.5, y - 0.5, 1.0])
        u, v = region.to_crop(x, y)
        assert ((u_idx + 0.5) / 64, (v_idx + 0.5) / 64) == pytest.approx((u, v))


@pytest.mark.parametrize("factor, size", [(2.0, 128), (4.0, 64), (3.3, 97), (1.0, 200)])
def test_point_maps_to_crop_and_back(factor: float, size: int) -> None:
    """A spot at a sub-pixel image position is found at the predicted place in the crop,
    and the crop position maps back to the image position."""
    spot = (71.3, 48.6)
    image = gaussian_blob(160, 120, spot[0], spot[1], sigma=3.0)
    box = (60.2, 35.9, 30.0, 22.0)  # spot inside, off the box centre
    crop, region = crop_around(image, box, factor, size)
    found_u, found_v = weighted_centre(crop[:, :, 1])
    predicted = region.to_crop(*spot)
    tolerance = 0.05 / region.side  # 0.05 image pixels; a half-pixel slip would be 10x that
    assert found_u / size == pytest.approx(predicted[0], abs=tolerance)
    assert found_v / size == pytest.approx(predicted[1], abs=tolerance)
    back = region.to_image(found_u / size, found_v / size)
    assert back == pytest.approx(spot, abs=0.05)


def test_box_maps_back_to_image_pixels() -> None:
    region = CropTransform(x0=100.0, y0=50.0, side=200.0, output_size=256)
    x, y, w, h = region.box_to_image(0.5, 0.25, 0.1, 0.2)
    assert (x, y, w, h) == pytest.approx((190.0, 80.0, 20.0, 40.0))


def test_padding_uses_image_mean_colour() -> None:
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    image[:, :50] = (0, 100, 200)
    image[:, 50:] = (40, 60, 80)
    assert mean_colour(image) == pytest.approx((20.0, 80.0, 140.0))
    crop, region = crop_around(image, (0.0, 0.0, 10.0, 10.0), factor=4.0, output_size=40)
    assert region.x0 == -15.0
    np.testing.assert_array_equal(crop[0, 0], [20, 80, 140])  # outside the image
    np.testing.assert_array_equal(crop[30, 30], [0, 100, 200])  # inside


def test_explicit_border_value_and_output_buffer_reused() -> None:
    image = np.full((20, 20, 3), 9, dtype=np.uint8)
    buffer = np.empty((16, 16, 3), dtype=np.uint8)
    crop, _ = crop_around(image, (-30, -30, 10, 10), 2.0, 16, out=buffer, border_value=(1, 2, 3))
    assert crop is buffer
    np.testing.assert_array_equal(crop[8, 8], [1, 2, 3])


def test_crop_inside_image_reproduces_pixels_at_scale_one() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    crop, region = crop_around(image, (30.0, 20.0, 8.0, 8.0), factor=2.0, output_size=16)
    assert region.scale == 1.0
    np.testing.assert_array_equal(crop, image[16:32, 26:42])


def test_normalizer_values_rgb_order_and_buffer() -> None:
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    normalizer = Normalizer(8, MEAN, STD)
    out = normalizer(crop)
    assert out.shape == (1, 3, 8, 8) and out.dtype == np.float32
    rgb = crop[:, :, ::-1].transpose(2, 0, 1) / 255.0
    expected = (rgb - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-5)
    # Pure blue in BGR lands in the last (blue) RGB plane.
    blue = np.zeros((8, 8, 3), dtype=np.uint8)
    blue[..., 0] = 255
    again = normalizer(blue)
    assert again is out  # preallocated output reused
    assert again[0, 2, 0, 0] == pytest.approx((1.0 - MEAN[2]) / STD[2], rel=1e-5)
    assert again[0, 0, 0, 0] == pytest.approx(-MEAN[0] / STD[0], rel=1e-5)


def test_normalizer_rejects_wrong_input() -> None:
    normalizer = Normalizer(8, MEAN, STD)
    with pytest.raises(ValueError):
        normalizer(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        normalizer(np.zeros((4, 8, 3), dtype=np.uint8))


def test_preprocessor_builds_network_input() -> None:
    image = np.full((100, 100, 3), (255, 0, 0), dtype=np.uint8)  # pure blue
    prep = CropPreprocessor(32, 2.0, MEAN, STD)
    tensor, region = prep(image, (40.0, 40.0, 20.0, 20.0))
    assert tensor.shape == (1, 3, 32, 32)
    assert region.side == pytest.approx(40.0)
    assert tensor[0, 2].min() == pytest.approx((1.0 - MEAN[2]) / STD[2], rel=1e-5)
