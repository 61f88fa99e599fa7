"""The crops of the authors' trackers, pixel for pixel, for their released weights.

Our own crop (``crops.crop_around``) is one sub-pixel ``warpAffine``. The reference trackers
cut integer pixel windows and resize them, and their weights were trained and evaluated on
exactly those; the two rules here reproduce them:

* ``stark`` (HiT ``vittrack_utils.sample_target``, MixFormerV2 ``processing_utils``): side
  ``ceil(sqrt(w*h) * factor)``; window origin ``round(cx - side/2)`` with Python's
  half-to-even ``round``; zero padding, where a window reaching the right or bottom image
  edge loses the last image column / row to one more padded one (their
  ``x2 - W + 1``); ``cv2.resize`` (bilinear) to the network size. The box maps back around
  the previous *float* centre: ``cx = cx_prev - side/2 + u * side``.
* ``siamfc`` (HCAT ``pysot_toolkit/trackers/tracker.py``): side ``ceil(sqrt(w_c * h_c))``
  with ``w_c = w + (factor - 1) * (w + h) / 2`` (SiamFC context); origin
  ``floor(c - (side + 1)/2 + 0.5)``; only the part inside the image is resized (by
  ``side / size``, rounded to whole output pixels), the padded sides are filled with the first
  frame's mean colour (floating point, not rounded; a side whose pad rounds to zero output
  pixels keeps zeros, as theirs does); the box maps back with the same ``side``.

Both return float32 BGR crops (``siamfc``) or uint8 (``stark``) ready for ``Normalizer``,
and a :class:`~ros_tracker.runtime.crops.CropTransform` whose origin and side are the ones
the authors map boxes back with.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ros_tracker.runtime.crops import CropTransform


def _positive_box(box: Sequence[float]) -> Tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box)
    if not (w > 0.0 and h > 0.0):
        raise ValueError(f"box must have a positive width and height, got {tuple(box)!r}")
    return x, y, w, h


def stark_side(box: Sequence[float], factor: float) -> int:
    _, _, w, h = _positive_box(box)
    return max(1, math.ceil(math.sqrt(w * h) * factor))


def _centred(box: Sequence[float], side: int, output_size: int) -> CropTransform:
    """The transform the authors map boxes back with: ``side`` around the float centre."""
    x, y, w, h = _positive_box(box)
    return CropTransform(
        x0=x + 0.5 * w - 0.5 * side,
        y0=y + 0.5 * h - 0.5 * side,
        side=float(side),
        output_size=int(output_size),
    )


def stark_region(box: Sequence[float], factor: float, output_size: int) -> CropTransform:
    return _centred(box, stark_side(box, factor), output_size)


def stark_crop(
    image: np.ndarray, box: Sequence[float], factor: float, output_size: int
) -> Tuple[np.ndarray, CropTransform]:
    """STARK's ``sample_target``: uint8 crop (output_size^2 x 3) and its transform."""
    x, y, w, h = _positive_box(box)
    side = stark_side(box, factor)
    height, width = image.shape[:2]
    x1 = int(round(x + 0.5 * w - side * 0.5))
    y1 = int(round(y + 0.5 * h - side * 0.5))
    x2, y2 = x1 + side, y1 + side
    pad_left, pad_top = max(0, -x1), max(0, -y1)
    pad_right, pad_bottom = max(x2 - width + 1, 0), max(y2 - height + 1, 0)
    window = np.zeros((side, side, 3), dtype=np.uint8)
    inner = image[y1 + pad_top : y2 - pad_bottom, x1 + pad_left : x2 - pad_right]
    if inner.size:
        window[pad_top : pad_top + inner.shape[0], pad_left : pad_left + inner.shape[1]] = inner
    crop = window if side == output_size else cv2.resize(window, (output_size, output_size))
    return crop, _centred(box, side, output_size)


def siamfc_side(box: Sequence[float], factor: float) -> int:
    """SiamFC context side: ``factor`` 2 is HCAT's template, 4 its search region."""
    _, _, w, h = _positive_box(box)
    context = (factor - 1.0) * (w + h) * 0.5
    return max(1, math.ceil(math.sqrt((w + context) * (h + context))))


def siamfc_region(box: Sequence[float], factor: float, output_size: int) -> CropTransform:
    return _centred(box, siamfc_side(box, factor), output_size)


def siamfc_crop(
    image: np.ndarray,
    box: Sequence[float],
    factor: float,
    output_size: int,
    fill: Optional[Sequence[float]] = None,
) -> Tuple[np.ndarray, CropTransform]:
    """pysot's ``get_subwindow`` as HCAT runs it: float32 crop and its transform.

    ``fill`` is the padding colour (BGR); the authors use the first frame's channel mean.
    """
    x, y, w, h = _positive_box(box)
    side = siamfc_side(box, factor)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    height, width = image.shape[:2]
    if fill is None:
        fill = image.reshape(-1, 3).mean(axis=0)
    scale = side / float(output_size)  # their resize_factor
    half = (side + 1) / 2.0
    xmin = int(math.floor(cx - half + 0.5))
    ymin = int(math.floor(cy - half + 0.5))
    xmax, ymax = xmin + side - 1, ymin + side - 1
    pad_left = max(0, -xmin)
    pad_top = max(0, -ymin)
    pad_right = max(0, xmax - width + 1)
    pad_bottom = max(0, ymax - height + 1)
    context = image[max(0, ymin) : min(ymax + 1, height), max(0, xmin) : min(xmax + 1, width)]
    rows = int(round(context.shape[0] / scale))
    cols = int(round(context.shape[1] / scale))
    top, left = int(round(pad_top / scale)), int(round(pad_left / scale))
    bottom, right = int(round(pad_bottom / scale)), int(round(pad_right / scale))
    crop = np.zeros((output_size, output_size, 3), dtype=np.float32)
    c = r = 0
    if rows > 0 and cols > 0 and context.size:
        resized = cv2.resize(context, (cols, rows))
        # Their canvas is exactly output_size: clip where the rounding overshoots it.
        r = max(0, min(rows, output_size - top))
        c = max(0, min(cols, output_size - left))
        crop[top : top + r, left : left + c] = resized[:r, :c]
    colour = np.asarray(fill, dtype=np.float64).astype(np.float32)
    # The padded sides, filled as theirs are (a side whose rounded pad is 0 keeps zeros).
    if top:
        crop[:top, left : left + c] = colour
    if bottom:
        crop[top + r :, left : left + c] = colour
    if left:
        crop[:, :left] = colour
    if right:
        crop[:, left + c :] = colour
    return crop, _centred(box, side, output_size)
