"""Checks on a user-given initial box before a tracker is initialised on it.

Used by the tracker and by whoever receives boxes from users (a SetTarget service, the CLI):
``validate_initial_box`` never raises on bad values, it says why it rejects them, so the
caller can answer with that message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ros_tracker.runtime.boxes import Box, intersect_image


@dataclass(frozen=True)
class BoxCheck:
    """Outcome of a box check: ``box`` is the box to use when ``ok``, else ``reason`` says why."""

    ok: bool
    box: Optional[Box] = None
    reason: str = ""
    clipped: bool = False  # the box reached past the image and was cut to it


def _reject(reason: str) -> BoxCheck:
    return BoxCheck(ok=False, reason=reason)


def validate_initial_box(box: Sequence[float], image_size: Tuple[int, int]) -> BoxCheck:
    """Check an (x, y, w, h) pixel box against an image of ``image_size`` = (width, height).

    Rejected: not four numbers, NaN or infinite values, zero or negative size, no overlap
    with the image. A box partly outside the image is clipped to it.
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        return _reject(f"image has no pixels (size {width}x{height})")
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        return _reject(f"box must be four numbers (x, y, w, h), got {box!r}")
    if len(values) != 4:
        return _reject(f"box must be four numbers (x, y, w, h), got {len(values)} values")
    if not all(math.isfinite(v) for v in values):
        return _reject(f"box has NaN or infinite values: {tuple(values)}")
    x, y, w, h = values
    if w <= 0.0 or h <= 0.0:
        return _reject(f"box has zero or negative size: w={w:g}, h={h:g}")
    inside = intersect_image((x, y, w, h), width, height)
    if inside[2] <= 0.0 or inside[3] <= 0.0:
        return _reject(
            f"box ({x:g}, {y:g}, {w:g}, {h:g}) lies entirely outside the {width}x{height} image"
        )
    # Decided on the edges, not by comparing the intersection with the box: x + w - x need
    # not equal w in floating point, which would call a box inside the image clipped.
    if x >= 0.0 and y >= 0.0 and x + w <= width and y + h <= height:
        return BoxCheck(ok=True, box=(x, y, w, h))
    return BoxCheck(ok=True, box=inside, clipped=True)


def require_initial_box(box: Sequence[float], image_size: Tuple[int, int]) -> Box:
    """Like validate_initial_box, but raises ValueError with the reason on rejection."""
    check = validate_initial_box(box, image_size)
    if not check.ok or check.box is None:
        raise ValueError("invalid initial box: " + check.reason)
    return check.box
