"""Small box helpers shared by the tracker: clipping policies of the reference trackers.

Boxes are (x, y, w, h) in image pixels, (x, y) the top-left corner (see runtime.crops for the
pixel convention).
"""

from __future__ import annotations

from typing import Tuple

Box = Tuple[float, float, float, float]

MIN_BOX_SIZE = 10.0


def clip_with_margin(box: Box, width: int, height: int, margin: float = MIN_BOX_SIZE) -> Box:
    """Clip to the image keeping at least ``margin`` pixels of box inside it.

    The rule of the STARK code family (HiT, MixFormer, OSTrack): each corner is clamped to the
    image, a corner may come no closer than ``margin`` to the opposite border, and the box keeps
    a side of at least ``margin``. The result always lies inside the image (for images larger
    than ``margin``).
    """
    x, y, w, h = box
    x1 = min(max(0.0, x), width - margin)
    y1 = min(max(0.0, y), height - margin)
    x2 = min(max(margin, x + w), float(width))
    y2 = min(max(margin, y + h), float(height))
    return x1, y1, max(margin, x2 - x1), max(margin, y2 - y1)


def clamp_centre(box: Box, width: int, height: int, min_size: float = MIN_BOX_SIZE) -> Box:
    """Keep the centre inside the image and the size within [min_size, image size].

    The rule of the Siamese code family (HCAT, from TransT / pysot): the box may stick out of
    the image, so its scale survives a target that is partly outside.
    """
    x, y, w, h = box
    cx = min(max(0.0, x + 0.5 * w), float(width))
    cy = min(max(0.0, y + 0.5 * h), float(height))
    w = min(max(min_size, w), float(width))
    h = min(max(min_size, h), float(height))
    return cx - 0.5 * w, cy - 0.5 * h, w, h


def intersect_image(box: Box, width: int, height: int) -> Box:
    """The part of ``box`` inside the image (zero width/height when it lies outside)."""
    x, y, w, h = box
    x1 = min(max(0.0, x), float(width))
    y1 = min(max(0.0, y), float(height))
    x2 = min(max(0.0, x + w), float(width))
    y2 = min(max(0.0, y + h), float(height))
    return x1, y1, x2 - x1, y2 - y1


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes (0 for empty ones)."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0.0 else 0.0
