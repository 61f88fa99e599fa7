"""The authors' pixel crops: STARK's sample_target (HiT, MixFormerV2) and pysot's
get_subwindow as HCAT runs it, against literal transcriptions of their rules."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ros_tracker.runtime import reference_crops
from ros_tracker.runtime.crops import CropPreprocessor
from ros_tracker.runtime.tracker import Tracker

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def textured(width: int = 200, height: int = 150, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (5, 5), 1)


def stark_reference(image, box, factor, size):
    """The rule as written: pad the whole image with zeros, then take the window."""
    x, y, w, h = box
    side = math.ceil(math.sqrt(w * h) * factor)
    x1, y1 = round(x + 0.5 * w - side * 0.5), round(y + 0.5 * h - side * 0.5)
    height, width = image.shape[:2]
    # Their pad of the far sides is one pixel too many when the window reaches the edge:
    # the image's last column / row inside the window is replaced by zeros.
    keep_w = width - 1 if x1 + side >= width else width
    keep_h = height - 1 if y1 + side >= height else height
    margin = side + 2
    canvas = np.zeros((height + 2 * margin, width + 2 * margin, 3), dtype=np.uint8)
    canvas[margin : margin + keep_h, margin : margin + keep_w] = image[:keep_h, :keep_w]
    window = canvas[margin + y1 : margin + y1 + side, margin + x1 : margin + x1 + side]
    return cv2.resize(window, (size, size)), side


@pytest.mark.parametrize(
    "box",
    [
        (60.0, 40.0, 30.0, 50.0),  # inside
        (2.0, 3.0, 30.0, 20.0),  # past the top-left corner
        (170.0, 120.0, 25.0, 25.0),  # past the bottom-right corner
        (81.0, 61.0, 21.0, 30.0),  # a half-pixel origin: Python's half-to-even round
    ],
)
@pytest.mark.parametrize("factor, size", [(2.0, 128), (4.0, 256), (4.5, 224)])
def test_stark_crop_is_their_window_resized(box, factor, size):
    image = textured()
    crop, region = reference_crops.stark_crop(image, box, factor, size)
    expected, side = stark_reference(image, box, factor, size)
    assert region.side == side and crop.dtype == np.uint8
    assert np.array_equal(crop, expected)
    # Boxes map back around the previous float centre, with the integer side.
    x, y, w, h = box
    assert region.to_image(0.5, 0.5) == pytest.approx((x + w / 2, y + h / 2))


def test_stark_origin_rounds_half_to_even():
    # side ceil(9 * 2) = 18; x + w/2 - 9 = 4.5 -> 4 (half-to-even; floor(x + 0.5) gives 5)
    box = (9.0, 9.0, 9.0, 9.0)
    image = np.arange(60 * 60 * 3, dtype=np.uint32).reshape(60, 60, 3).astype(np.uint8)
    crop, region = reference_crops.stark_crop(image, box, 2.0, 18)
    assert region.side == 18
    assert np.array_equal(crop, image[4:22, 4:22])


def siamfc_reference_inside(image, box, factor, size):
    x, y, w, h = box
    context = (factor - 1) * (w + h) * 0.5
    side = math.ceil(math.sqrt((w + context) * (h + context)))
    c = (side + 1) / 2
    x0 = math.floor(x + w / 2 - c + 0.5)
    y0 = math.floor(y + h / 2 - c + 0.5)
    return cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (size, size)), side


def test_siamfc_crop_inside_the_image_is_the_resized_context():
    image = textured()
    box = (80.0, 60.0, 20.0, 16.0)
    crop, region = reference_crops.siamfc_crop(image, box, 2.0, 128)
    expected, side = siamfc_reference_inside(image, box, 2.0, 128)
    assert region.side == side == reference_crops.siamfc_side(box, 2.0)
    assert crop.dtype == np.float32 and np.array_equal(crop, expected.astype(np.float32))


def test_siamfc_crop_pads_with_the_given_float_colour():
    image = textured()
    fill = (10.25, 20.5, 30.75)
    crop, region = reference_crops.siamfc_crop(image, (0.0, 50.0, 20.0, 20.0), 4.0, 64, fill)
    # The context starts left of the image: the first output columns are the fill colour.
    assert region.x0 < 0
    assert np.allclose(crop[:, 0], np.array(fill, dtype=np.float32))
    assert crop[:, -1].std() > 1.0  # image content on the right


def test_preprocessor_normalises_as_their_preprocessors():
    image = textured()
    box = (60.0, 40.0, 30.0, 50.0)
    prep = CropPreprocessor(128, 2.0, MEAN, STD, style="stark")
    tensor, _ = prep(image, box)
    crop, _ = reference_crops.stark_crop(image, box, 2.0, 128)
    rgb = crop[:, :, ::-1].astype(np.float32)
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)
    expected = ((rgb / np.float32(255.0) - mean) / std).transpose(2, 0, 1)
    assert tensor.dtype == np.float32 and np.array_equal(tensor[0], expected)


def test_siamfc_padding_colour_is_the_first_frames_mean(tmp_path):
    from runtime_helpers import build_tiny

    from ros_tracker.runtime.backends.torch_backend import TorchBackend

    network = build_tiny("hcat")
    card = network.card.replace(crop_style="siamfc")
    tracker = Tracker(card, TorchBackend(card, network, device="cpu"))
    first = np.full((90, 120, 3), 200, dtype=np.uint8)
    tracker.initialize(first, (50.0, 40.0, 16.0, 16.0))
    assert np.allclose(tracker._search_input._fill, (200.0, 200.0, 200.0))
    dark = np.zeros((90, 120, 3), dtype=np.uint8)
    tracker.track(dark)  # crops of later frames keep padding with the first frame's mean
    assert np.allclose(tracker._search_input._fill, (200.0, 200.0, 200.0))


def test_unknown_crop_style_is_refused():
    with pytest.raises(ValueError, match="crop style must be one of"):
        CropPreprocessor(64, 2.0, MEAN, STD, style="bilinear")


@pytest.mark.parametrize("style", ["stark", "siamfc"])
def test_region_is_the_crops_own_transform(style):
    image = textured()
    box = (30.0, 40.0, 22.0, 35.0)
    prep = CropPreprocessor(128, 2.0, MEAN, STD, style=style)
    prep.start(image)
    _, region = prep(image, box)
    assert prep.region(box) == region
