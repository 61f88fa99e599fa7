"""Image message <-> numpy conversion on real sensor_msgs messages."""

from __future__ import annotations

import array
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2) is not installed")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ros_tracker.nodes.image_conversion import (  # noqa: E402
    ImageConversionError,
    bgr_to_compressed_msg,
    bgr_to_image_msg,
    compressed_msg_to_bgr,
    image_msg_to_bgr,
    image_msg_to_numpy,
    numpy_to_image_msg,
)

HEIGHT, WIDTH = 5, 7
RNG = np.random.default_rng(7)
BGR = RNG.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)

# encoding -> (pixels in that encoding, expected BGR for the 8-bit ones)
EIGHT_BIT = {
    "bgr8": (BGR, BGR),
    "rgb8": (BGR[:, :, ::-1].copy(), BGR),
    "bgra8": (np.dstack([BGR, np.full((HEIGHT, WIDTH), 9, np.uint8)]), BGR),
    "rgba8": (np.dstack([BGR[:, :, ::-1], np.full((HEIGHT, WIDTH), 9, np.uint8)]), BGR),
    "mono8": (BGR[:, :, 0].copy(), np.repeat(BGR[:, :, :1], 3, axis=2)),
}
WIDE = {
    "mono16": RNG.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16),
    "16UC1": RNG.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16),
    "32FC1": RNG.normal(2.0, 1.5, (HEIGHT, WIDTH)).astype(np.float32),
}


def raw_message(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False):
    """An Image built by hand, with ``pad`` garbage bytes after every row."""
    pixels = np.ascontiguousarray(pixels)
    if bigendian:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    padding = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    data = np.hstack([rows, padding])
    msg = Image()
    msg.height, msg.width = pixels.shape[0], pixels.shape[1]
    msg.encoding = encoding
    msg.is_bigendian = int(bigendian)
    msg.step = data.shape[1]
    msg.data = array.array("B", data.tobytes())
    return msg


def expected_minmax_grey(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    low, high = values.min(), values.max()
    grey = np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


@pytest.mark.parametrize("encoding", sorted(EIGHT_BIT))
def test_eight_bit_round_trip_through_serialization(encoding):
    pixels, expected_bgr = EIGHT_BIT[encoding]
    header = Header(frame_id="camera")
    header.stamp.sec = 12
    msg = deserialize_message(
        serialize_message(numpy_to_image_msg(pixels, encoding, header)), Image
    )
    assert (msg.height, msg.width, msg.encoding) == (HEIGHT, WIDTH, encoding)
    assert msg.header.frame_id == "camera" and msg.header.stamp.sec == 12
    np.testing.assert_array_equal(image_msg_to_numpy(msg), pixels)
    bgr = image_msg_to_bgr(msg)
    assert bgr.dtype == np.uint8 and bgr.flags.c_contiguous
    np.testing.assert_array_equal(bgr, expected_bgr)


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8"])
def test_bgr_to_image_msg_round_trip(encoding):
    msg = bgr_to_image_msg(BGR, encoding=encoding)
    assert msg.encoding == encoding
    np.testing.assert_array_equal(image_msg_to_bgr(msg), BGR)


def test_bgr_to_mono8_uses_luminance():
    msg = bgr_to_image_msg(BGR, encoding="mono8")
    np.testing.assert_array_equal(image_msg_to_numpy(msg), cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("encoding", sorted(WIDE))
def test_wide_round_trip_and_minmax_scaling(encoding):
    values = WIDE[encoding]
    msg = numpy_to_image_msg(values, encoding)
    assert msg.step == WIDTH * values.itemsize
    np.testing.assert_array_equal(image_msg_to_numpy(msg), values)
    bgr = image_msg_to_bgr(msg)
    assert bgr.shape == (HEIGHT, WIDTH, 3) and bgr.dtype == np.uint8
    assert bgr.min() == 0 and bgr.max() == 255
    np.testing.assert_allclose(bgr, expected_minmax_grey(values), atol=1)


@pytest.mark.parametrize("encoding", sorted(EIGHT_BIT) + sorted(WIDE))
@pytest.mark.parametrize("pad", [1, 3, 16])
def test_padded_rows_are_skipped(encoding, pad):
    pixels = EIGHT_BIT[encoding][0] if encoding in EIGHT_BIT else WIDE[encoding]
    msg = raw_message(pixels, encoding, pad=pad)
    np.testing.assert_array_equal(image_msg_to_numpy(msg), pixels)
    unpadded = raw_message(pixels, encoding)
    np.testing.assert_array_equal(image_msg_to_bgr(msg), image_msg_to_bgr(unpadded))
    assert image_msg_to_bgr(msg).flags.c_contiguous


@pytest.mark.parametrize("encoding", sorted(WIDE))
def test_big_endian_data_is_read_in_native_order(encoding):
    values = WIDE[encoding]
    msg = raw_message(values, encoding, pad=2, bigendian=True)
    pixels = image_msg_to_numpy(msg)
    assert pixels.dtype.isnative
    np.testing.assert_array_equal(pixels, values)
    np.testing.assert_array_equal(
        image_msg_to_bgr(msg), image_msg_to_bgr(raw_message(values, encoding))
    )


def test_bgr8_without_padding_is_not_copied():
    msg = bgr_to_image_msg(BGR)
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    assert np.shares_memory(image_msg_to_bgr(msg), buffer)
    assert np.shares_memory(image_msg_to_numpy(msg), buffer)
    copied = image_msg_to_bgr(msg, copy=True)
    assert not np.shares_memory(copied, buffer)
    np.testing.assert_array_equal(copied, BGR)


def test_fixed_value_range_clips_and_scales():
    depth = np.array([[0, 300, 2600, 5000, 9000]], dtype=np.uint16)
    grey = image_msg_to_bgr(numpy_to_image_msg(depth, "16UC1"), value_range=(300, 5000))[0, :, 0]
    np.testing.assert_array_equal(grey, [0, 0, 125, 255, 255])  # 2300 * 255 / 4700


def test_non_finite_floats_become_black_and_are_ignored_for_range():
    depth = np.array([[np.nan, 1.0, 2.0, np.inf, 5.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grey = image_msg_to_bgr(numpy_to_image_msg(depth, "32FC1"))[0, :, 0]
    np.testing.assert_array_equal(grey, [0, 0, 64, 0, 255])


def test_constant_image_maps_to_black():
    flat = np.full((3, 4), 1234, dtype=np.uint16)
    assert not image_msg_to_bgr(numpy_to_image_msg(flat, "mono16")).any()


def test_aliases_are_accepted():
    msg = raw_message(BGR, "8UC3")
    np.testing.assert_array_equal(image_msg_to_bgr(msg), BGR)


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"encoding": "yuv9000"}, r"unsupported image encoding 'yuv9000'"),
        ({"encoding": ""}, r"unsupported image encoding ''"),
        ({"step": WIDTH * 3 - 1}, r"step 20 is smaller than width\*bytes_per_pixel = 7\*3 = 21"),
        ({"width": 0}, r"zero size: width=0, height=5"),
        ({"height": 0}, r"zero size: width=7, height=0"),
        ({"height": HEIGHT + 1}, r"data has 105 bytes but height\*step = 6\*21 = 126"),
        ({"data": array.array("B", bytes(104))}, r"data has 104 bytes but height\*step = 5\*21"),
        ({"data": array.array("B", bytes(106))}, r"data has 106 bytes but height\*step = 5\*21"),
    ],
)
def test_malformed_messages_are_rejected(change, pattern):
    msg = bgr_to_image_msg(BGR)
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(ImageConversionError, match=pattern):
        image_msg_to_bgr(msg)
    with pytest.raises(ValueError):
        image_msg_to_numpy(msg)


def test_step_check_counts_bytes_of_wide_pixels():
    msg = numpy_to_image_msg(WIDE["32FC1"], "32FC1")
    msg.step = WIDTH * 2
    msg.data = array.array("B", bytes(HEIGHT * msg.step))
    with pytest.raises(ImageConversionError, match=r"7\*4 = 28 for encoding '32FC1'"):
        image_msg_to_numpy(msg)


def test_numpy_to_image_msg_rejects_mismatched_arrays():
    with pytest.raises(ImageConversionError, match="does not fit encoding 'bgr8'"):
        numpy_to_image_msg(BGR[:, :, 0], "bgr8")
    with pytest.raises(ImageConversionError, match="dtype float64 does not fit encoding '16UC1'"):
        numpy_to_image_msg(np.zeros((2, 2)), "16UC1")
    with pytest.raises(ImageConversionError, match="8-bit encodings only"):
        bgr_to_image_msg(BGR, encoding="32FC1")


def test_compressed_png_is_lossless():
    msg = deserialize_message(
        serialize_message(bgr_to_compressed_msg(BGR, fmt="png")), CompressedImage
    )
    assert msg.format == "png"
    np.testing.assert_array_equal(compressed_msg_to_bgr(msg), BGR)


def test_compressed_jpeg_is_close():
    smooth = cv2.GaussianBlur(cv2.resize(BGR, (64, 48), interpolation=cv2.INTER_CUBIC), (5, 5), 2)
    msg = bgr_to_compressed_msg(smooth, fmt="jpeg", quality=95)
    assert msg.format == "jpeg"
    decoded = compressed_msg_to_bgr(msg)
    assert decoded.shape == smooth.shape
    assert np.abs(decoded.astype(int) - smooth.astype(int)).mean() < 3.0


def test_compressed_sixteen_bit_png_is_scaled():
    depth = np.array([[100, 200], [350, 500]], dtype=np.uint16)
    ok, encoded = cv2.imencode(".png", depth)
    assert ok
    msg = CompressedImage(format="16UC1; png")
    msg.data = array.array("B", encoded.tobytes())
    np.testing.assert_array_equal(compressed_msg_to_bgr(msg)[:, :, 0], [[0, 64], [159, 255]])


@pytest.mark.parametrize(
    "data, pattern",
    [
        (b"", r"has no data"),
        (
            b"\xff\xd8\xff\xe0 definitely not a jpeg",
            r"could not decode compressed image of 26 bytes",
        ),
    ],
)
def test_undecodable_compressed_data_is_rejected(data, pattern):
    msg = CompressedImage(format="jpeg")
    msg.data = array.array("B", data)
    with pytest.raises(ImageConversionError, match=pattern):
        compressed_msg_to_bgr(msg)


def test_compressed_depth_is_reported_unsupported():
    msg = bgr_to_compressed_msg(BGR, fmt="png")
    msg.format = "16UC1; compressedDepth png"
    with pytest.raises(ImageConversionError, match="compressedDepth"):
        compressed_msg_to_bgr(msg)
