"""Conversion between sensor_msgs image messages and numpy arrays.

Replaces cv_bridge, which is missing or broken outside a ROS distribution. Raw images are read
through ``np.frombuffer`` and a strided view that honours ``step`` (padded rows) and
``is_bigendian``, so reading costs no copy; producing the BGR image the tracker consumes costs
at most one.

Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1 (plus the aliases
8UC1, 8UC3, 8UC4 for mono8, bgr8, bgra8), and what drone and USB cameras send:

* ``yuv422`` = ``uyvy`` (U Y0 V Y1) and ``yuv422_yuy2`` = ``yuyv`` (Y0 U Y1 V), 4:2:2 with
  two bytes a pixel;
* ``nv12`` (Y plane, then interleaved U V at half resolution) and ``nv21`` (V U), 4:2:0:
  ``height`` rows of ``step`` bytes of Y, then ``height / 2`` rows of chroma;
* ``bayer_rggb8``, ``bayer_bggr8``, ``bayer_gbrg8``, ``bayer_grbg8`` and their 16-bit forms
  (``bayer_*16``), demosaiced by OpenCV (the pattern names the top-left 2x2 block).

YUV is read as ITU-R BT.601 with video range (Y 16..235), as V4L2 cameras deliver it.

Single-channel 16-bit and float images (mono16, 16UC1, 32FC1) have no natural 8-bit colour, so
``image_msg_to_bgr`` maps them linearly to 0..255 grey (16-bit Bayer images: the demosaiced
colours, the same way):
- with ``value_range=(low, high)``: ``low`` -> 0 and ``high`` -> 255, values outside clipped.
  Use this for a sequence (e.g. depth in millimetres, ``(300, 5000)``): the mapping stays the
  same from frame to frame, which appearance-based tracking needs.
- without it (default): per-frame min-max over the finite pixels. Always displayable, but the
  grey level of a given value changes between frames.
Non-finite float pixels (NaN, inf: "no measurement" in depth images) become 0.
"""

from __future__ import annotations

import array
import sys
from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


class ImageConversionError(ValueError):
    """An image message that cannot be converted; the message says what is wrong."""


class _EncodingLayout(NamedTuple):
    channels: int
    dtype: str  # numpy base type, byte order applied separately


_LAYOUTS = {
    "rgb8": _EncodingLayout(3, "u1"),
    "bgr8": _EncodingLayout(3, "u1"),
    "rgba8": _EncodingLayout(4, "u1"),
    "bgra8": _EncodingLayout(4, "u1"),
    "mono8": _EncodingLayout(1, "u1"),
    "mono16": _EncodingLayout(1, "u2"),
    "16UC1": _EncodingLayout(1, "u2"),
    "32FC1": _EncodingLayout(1, "f4"),
    "yuv422": _EncodingLayout(2, "u1"),
    "yuv422_yuy2": _EncodingLayout(2, "u1"),
    "nv12": _EncodingLayout(1, "u1"),
    "nv21": _EncodingLayout(1, "u1"),
}
_ALIASES = {
    "8UC1": "mono8",
    "8UC3": "bgr8",
    "8UC4": "bgra8",
    "uyvy": "yuv422",
    "yuyv": "yuv422_yuy2",
}
# Bayer patterns; OpenCV names a pattern by the second row's first two pixels, hence the shift.
_BAYER = {
    "rggb": cv2.COLOR_BayerBG2BGR,
    "bggr": cv2.COLOR_BayerRG2BGR,
    "gbrg": cv2.COLOR_BayerGR2BGR,
    "grbg": cv2.COLOR_BayerGB2BGR,
}
for _pattern in _BAYER:
    _LAYOUTS[f"bayer_{_pattern}8"] = _EncodingLayout(1, "u1")
    _LAYOUTS[f"bayer_{_pattern}16"] = _EncodingLayout(1, "u2")
# 4:2:0 encodings: the message holds height * 3 / 2 rows (luma, then half-resolution chroma).
_PLANAR = ("nv12", "nv21")

# cv2 colour conversions to BGR for the 8-bit encodings other than bgr8 itself.
_TO_BGR = {
    "rgb8": cv2.COLOR_RGB2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR,
    "mono8": cv2.COLOR_GRAY2BGR,
    "yuv422": cv2.COLOR_YUV2BGR_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
    "nv12": cv2.COLOR_YUV2BGR_NV12,
    "nv21": cv2.COLOR_YUV2BGR_NV21,
}
for _pattern, _code in _BAYER.items():
    _TO_BGR[f"bayer_{_pattern}8"] = _code
_FROM_BGR = {
    "rgb8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_BGR2RGBA,
    "bgra8": cv2.COLOR_BGR2BGRA,
    "mono8": cv2.COLOR_BGR2GRAY,
}

SUPPORTED_ENCODINGS = tuple(_LAYOUTS) + tuple(_ALIASES)

ValueRange = Tuple[float, float]


def _canonical_encoding(encoding: str) -> str:
    name = _ALIASES.get(encoding, encoding)
    if name not in _LAYOUTS:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    return name


def _message_buffer(data) -> np.ndarray:
    """A flat uint8 view of a message's data field (array.array, bytes, ...); copies only lists."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _pixel_view(msg: Image) -> np.ndarray:
    """Validated strided view of the message buffer, in the message's byte order."""
    encoding = _canonical_encoding(msg.encoding)
    layout = _LAYOUTS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size: width={width}, height={height}")
    item_size = np.dtype(layout.dtype).itemsize
    pixel_bytes = layout.channels * item_size
    if step < width * pixel_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than width*bytes_per_pixel = {width}*{pixel_bytes} = "
            f"{width * pixel_bytes} for encoding {msg.encoding!r}"
        )
    subsampled = encoding in _PLANAR or encoding.startswith("yuv422") or "bayer" in encoding
    if subsampled and (width % 2 or height % 2) and not encoding.startswith("yuv422"):
        raise ImageConversionError(
            f"encoding {msg.encoding!r} needs an even width and height, got {width}x{height}"
        )
    if encoding.startswith("yuv422") and width % 2:
        raise ImageConversionError(f"encoding {msg.encoding!r} needs an even width, got {width}")
    rows = height * 3 // 2 if encoding in _PLANAR else height
    buffer = _message_buffer(msg.data)
    if buffer.size != rows * step:
        what = (
            f"height*3/2*step = {rows}*{step}"
            if encoding in _PLANAR
            else f"height*step = {height}*{step}"
        )
        raise ImageConversionError(
            f"data has {buffer.size} bytes but {what} = {rows * step} for {msg.encoding!r}"
        )
    height = rows
    byte_order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype(layout.dtype).newbyteorder(byte_order)
    if layout.channels == 1:
        shape, strides = (height, width), (step, item_size)
    else:
        shape = (height, width, layout.channels)
        strides = (step, pixel_bytes, item_size)
    return np.ndarray(shape, dtype=dtype, buffer=buffer, strides=strides)


def check_image_msg(msg: Image) -> None:
    """Raise ImageConversionError if ``msg`` cannot be converted (encoding, sizes, step,
    data length). Costs no copy: the image callback runs it on every message."""
    _pixel_view(msg)


def check_compressed_msg(msg: CompressedImage) -> None:
    """The cheap part of compressed_msg_to_bgr's checks (decoding itself happens later)."""
    _compressed_buffer(msg)


def image_msg_to_numpy(msg: Image) -> np.ndarray:
    """The pixels of ``msg`` as (H, W) or (H, W, C), in the message's own encoding.

    The result is a view of the message's buffer (no copy), except for big-endian 16/32-bit
    data, which is converted to native byte order. Copy it before writing into it.
    """
    view = _pixel_view(msg)
    if not view.dtype.isnative:
        view = view.astype(view.dtype.newbyteorder("="))
    return view


def _scale_to_uint8(values: np.ndarray, value_range: Optional[ValueRange]) -> np.ndarray:
    """Linear map of a single-channel 16-bit or float image to uint8 (see module docstring)."""
    scaled = values.astype(np.float32)
    finite = np.isfinite(scaled)
    all_finite = bool(finite.all())
    if value_range is not None:
        low, high = float(value_range[0]), float(value_range[1])
        if not high > low:
            raise ImageConversionError(f"value_range must have high > low, got {value_range}")
    elif all_finite:
        low, high = float(scaled.min()), float(scaled.max())
    elif finite.any():
        low, high = float(scaled[finite].min()), float(scaled[finite].max())
    else:
        low, high = 0.0, 1.0
    if not all_finite:
        scaled[~finite] = low
    gain = 255.0 / (high - low) if high > low else 0.0
    scaled -= low
    scaled *= gain
    np.clip(scaled, 0.0, 255.0, out=scaled)
    scaled += 0.5  # round to nearest on the truncating cast
    return scaled.astype(np.uint8)


def _pixels_to_bgr(
    pixels: np.ndarray, encoding: str, value_range: Optional[ValueRange], copy: bool
) -> np.ndarray:
    if encoding == "bgr8":
        if copy or not pixels.flags.c_contiguous:
            return np.array(pixels, order="C", copy=True)
        return pixels
    if encoding in _TO_BGR:
        return cv2.cvtColor(pixels, _TO_BGR[encoding])
    if encoding.startswith("bayer_"):  # 16-bit: demosaic at full depth, then scale
        native = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)
        colour = cv2.cvtColor(native, _BAYER[encoding[len("bayer_") : -2]])
        return _scale_to_uint8(colour, value_range)
    grey = _scale_to_uint8(pixels, value_range)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def image_msg_to_bgr(
    msg: Image, value_range: Optional[ValueRange] = None, copy: bool = False
) -> np.ndarray:
    """The image as a contiguous (H, W, 3) uint8 BGR array, as the tracker consumes it.

    A bgr8 message without row padding is returned as a view of its buffer unless ``copy``;
    every other case makes exactly one new array (plus an intermediate for 16-bit and float
    encodings, scaled as the module docstring describes using ``value_range``).
    """
    pixels = _pixel_view(msg)  # byte order is resolved by the float scaling, if any
    return _pixels_to_bgr(pixels, _canonical_encoding(msg.encoding), value_range, copy)


def _bytes_array(pixels: np.ndarray) -> array.array:
    """Message data from a C-contiguous array in one copy (bypasses rclpy's per-element check)."""
    data = array.array("B")
    data.frombytes(memoryview(pixels.reshape(-1).view(np.uint8)))
    return data


def numpy_to_image_msg(pixels: np.ndarray, encoding: str, header: Optional[Header] = None) -> Image:
    """An Image message holding ``pixels``, which must already be laid out as ``encoding``."""
    canonical = _canonical_encoding(encoding)
    layout = _LAYOUTS[canonical]
    expected_ndim = 2 if layout.channels == 1 else 3
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and layout.channels == 1 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim != expected_ndim or (layout.channels > 1 and pixels.shape[2] != layout.channels):
        raise ImageConversionError(
            f"array of shape {pixels.shape} does not fit encoding {encoding!r} "
            f"({layout.channels} channel(s))"
        )
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageConversionError(f"array has zero size: shape {pixels.shape}")
    native = np.dtype(layout.dtype).newbyteorder("=")
    if pixels.dtype != native:
        raise ImageConversionError(
            f"array of dtype {pixels.dtype} does not fit encoding {encoding!r} (needs {native})"
        )
    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and native.itemsize > 1)
    msg.step = int(pixels.strides[0])
    msg.data = _bytes_array(pixels)
    return msg


def bgr_to_image_msg(
    image: np.ndarray, header: Optional[Header] = None, encoding: str = "bgr8"
) -> Image:
    """An Image message from a (H, W, 3) uint8 BGR array, converted to an 8-bit ``encoding``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageConversionError(
            f"expected a (H, W, 3) uint8 BGR array, got shape {image.shape} dtype {image.dtype}"
        )
    canonical = _canonical_encoding(encoding)
    if canonical in _FROM_BGR:
        pixels = cv2.cvtColor(image, _FROM_BGR[canonical])
    elif canonical == "bgr8":
        pixels = image
    else:
        raise ImageConversionError(
            f"bgr_to_image_msg writes 8-bit encodings only, not {encoding!r}; "
            "use numpy_to_image_msg for 16-bit and float images"
        )
    return numpy_to_image_msg(pixels, encoding, header)


def _compressed_buffer(msg: CompressedImage) -> np.ndarray:
    buffer = _message_buffer(msg.data)
    if buffer.size == 0:
        raise ImageConversionError(f"compressed image (format {msg.format!r}) has no data")
    if "compresseddepth" in msg.format.lower():
        raise ImageConversionError(
            f"compressed image format {msg.format!r} (compressedDepth) is not supported"
        )
    return buffer


def compressed_msg_to_bgr(
    msg: CompressedImage, value_range: Optional[ValueRange] = None
) -> np.ndarray:
    """Decode a CompressedImage (jpeg, png, ...) to a (H, W, 3) uint8 BGR array.

    16-bit greyscale PNGs are scaled like mono16 raw images (see the module docstring).
    """
    buffer = _compressed_buffer(msg)
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageConversionError(
            f"could not decode compressed image of {buffer.size} bytes (format {msg.format!r})"
        )
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[:, :, 0]
    if decoded.dtype == np.uint8:
        if decoded.ndim == 2:
            return cv2.cvtColor(decoded, cv2.COLOR_GRAY2BGR)
        if decoded.shape[2] == 4:
            return cv2.cvtColor(decoded, cv2.COLOR_BGRA2BGR)
        return decoded
    if decoded.ndim == 2:
        return cv2.cvtColor(_scale_to_uint8(decoded, value_range), cv2.COLOR_GRAY2BGR)
    raise ImageConversionError(
        f"decoded compressed image has {decoded.shape[2]} channels of {decoded.dtype}; "
        "only 8-bit colour and 8/16-bit greyscale are supported"
    )


def bgr_to_compressed_msg(
    image: np.ndarray, header: Optional[Header] = None, fmt: str = "jpeg", quality: int = 90
) -> CompressedImage:
    """A CompressedImage (``fmt`` jpeg or png) from a (H, W, 3) uint8 BGR array."""
    extensions = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}
    if fmt not in extensions:
        raise ImageConversionError(f"unsupported compression format {fmt!r}; use jpeg or png")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if extensions[fmt] == ".jpg" else []
    ok, encoded = cv2.imencode(extensions[fmt], image, params)
    if not ok:
        raise ImageConversionError(f"cv2 could not encode the image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg" if extensions[fmt] == ".jpg" else "png"
    msg.data = _bytes_array(encoded)
    return msg
