"""The camera encodings drones and USB cameras send (YUV 4:2:2, NV12/NV21, Bayer), checked
against frames encoded here from a known BGR image with the standards' own formulas."""

from __future__ import annotations

import array

import numpy as np
import pytest
from sensor_msgs.msg import Image

from ros_tracker.nodes.image_conversion import ImageConversionError, image_msg_to_bgr

HEIGHT, WIDTH, BLOCK = 48, 64, 8
RNG = np.random.default_rng(11)
# Uniform 8x8 blocks: chroma subsampling and demosaicing are exact inside each block.
BGR = np.kron(
    RNG.integers(0, 256, (HEIGHT // BLOCK, WIDTH // BLOCK, 3)), np.ones((BLOCK, BLOCK, 1))
).astype(np.uint8)
INTERIOR = np.zeros((HEIGHT, WIDTH), bool)
for r in range(0, HEIGHT, BLOCK):
    for c in range(0, WIDTH, BLOCK):
        INTERIOR[r + 2 : r + BLOCK - 2, c + 2 : c + BLOCK - 2] = True


def bt601_video_range(bgr: np.ndarray):
    """Y, U, V (float) of ITU-R BT.601 with Y in 16..235 and chroma in 16..240."""
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    y = 16.0 + 0.2568 * r + 0.5041 * g + 0.0979 * b
    u = 128.0 - 0.1482 * r - 0.2910 * g + 0.4392 * b
    v = 128.0 + 0.4392 * r - 0.3678 * g - 0.0714 * b
    return y, u, v


def as_bytes(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def message(encoding: str, rows: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> Image:
    rows = np.ascontiguousarray(rows)
    msg = Image(height=height, width=width, encoding=encoding, step=rows.strides[0])
    msg.data = array.array("B", rows.tobytes())
    return msg


def yuv422(order: str) -> np.ndarray:
    y, u, v = bt601_video_range(BGR)
    u = u[:, 0::2]  # blocks are uniform: the pair's first pixel stands for both
    v = v[:, 0::2]
    y, u, v = as_bytes(y), as_bytes(u), as_bytes(v)
    packed = np.empty((HEIGHT, WIDTH // 2, 4), np.uint8)
    planes = {"Y0": y[:, 0::2], "Y1": y[:, 1::2], "U": u, "V": v}
    for index, name in enumerate(order.split()):
        packed[..., index] = planes[name]
    return packed.reshape(HEIGHT, WIDTH * 2)


def nv(order: str) -> np.ndarray:
    y, u, v = bt601_video_range(BGR)
    chroma = np.empty((HEIGHT // 2, WIDTH // 2, 2), np.uint8)
    first, second = (u, v) if order == "UV" else (v, u)
    chroma[..., 0] = as_bytes(first[0::2, 0::2])
    chroma[..., 1] = as_bytes(second[0::2, 0::2])
    return np.vstack([as_bytes(y), chroma.reshape(HEIGHT // 2, WIDTH)])


def mosaic(pattern: str, bgr: np.ndarray) -> np.ndarray:
    """One colour sample per pixel; ``pattern`` names the top-left 2x2 block row by row."""
    channel = {"B": 0, "G": 1, "R": 2}
    out = np.empty(bgr.shape[:2], bgr.dtype)
    for index, colour in enumerate(pattern.upper()):
        row, col = divmod(index, 2)
        out[row::2, col::2] = bgr[row::2, col::2, channel[colour]]
    return out


@pytest.mark.parametrize(
    "encoding, rows",
    [
        ("yuv422", yuv422("U Y0 V Y1")),
        ("uyvy", yuv422("U Y0 V Y1")),
        ("yuv422_yuy2", yuv422("Y0 U Y1 V")),
        ("yuyv", yuv422("Y0 U Y1 V")),
        ("nv12", nv("UV")),
        ("nv21", nv("VU")),
    ],
)
def test_yuv_encodings_decode_to_the_original_colours(encoding, rows):
    decoded = image_msg_to_bgr(message(encoding, rows))
    assert decoded.shape == (HEIGHT, WIDTH, 3) and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(int) - BGR.astype(int))
    assert error.max() <= 3, error.max()


def test_yuv422_honours_row_padding():
    rows = yuv422("U Y0 V Y1")
    padded = np.hstack([rows, np.zeros((HEIGHT, 6), np.uint8)])
    decoded = image_msg_to_bgr(message("yuv422", padded))
    assert np.abs(decoded.astype(int) - BGR.astype(int)).max() <= 3


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer8_demosaics_each_pattern(pattern):
    decoded = image_msg_to_bgr(message(f"bayer_{pattern}8", mosaic(pattern, BGR)))
    assert np.array_equal(decoded[INTERIOR], BGR[INTERIOR])


@pytest.mark.parametrize("pattern", ["rggb", "gbrg"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_bayer16_demosaics_then_scales_like_other_16_bit_images(pattern, bigendian):
    wide = mosaic(pattern, BGR.astype(np.uint16) * 257)  # 0..255 -> 0..65535
    rows = wide.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(HEIGHT, WIDTH * 2)
    msg = message(f"bayer_{pattern}16", rows)
    msg.is_bigendian = int(bigendian)
    decoded = image_msg_to_bgr(msg, value_range=(0.0, 65535.0))
    assert np.abs(decoded[INTERIOR].astype(int) - BGR[INTERIOR].astype(int)).max() <= 1


@pytest.mark.parametrize(
    "encoding, rows, size, pattern",
    [
        ("nv12", np.zeros((HEIGHT, WIDTH), np.uint8), (WIDTH, HEIGHT), r"height\*3/2\*step"),
        ("nv12", np.zeros((10, 7), np.uint8), (7, 6), "even width and height"),
        ("yuyv", np.zeros((4, 10), np.uint8), (5, 4), "even width"),
        ("bayer_rggb8", np.zeros((5, 8), np.uint8), (8, 5), "even width and height"),
    ],
)
def test_malformed_camera_encodings_say_why(encoding, rows, size, pattern):
    width, height = size
    msg = message(encoding, rows, width=width, height=height)
    if encoding == "yuyv":
        msg.step = 10
    with pytest.raises(ImageConversionError, match=pattern):
        image_msg_to_bgr(msg)
