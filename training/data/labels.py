"""Per-family training targets, computed from the search box normalised to the search crop.

* HiT: the box corners (top-left, bottom-right), which the corner head's soft-argmax regresses
  under GIoU + L1 (paper Eq. 4).
* HCAT (paper Sec. 3.4): every search cell whose centre lies inside the box is a positive,
  every other cell a negative whose classification loss counts 1/16; regression only on the
  positives.
* ABTrack (OSTrack's center head): a Gaussian heatmap around the cell holding the box centre
  (CenterNet radius at IoU 0.7, sigma = diameter / 6), the sub-cell offset of the centre and
  the normalised size.
* MixFormerV2: the distribution of each box side over the bins (mass split between the two
  nearest bin centres), the label of the box-side distribution head, and the score label.

Negative pairs (positive = 0) get all-negative classification targets.
"""

from __future__ import annotations

import math
from typing import Dict

import numpy as np


def corner_targets(box_xyxy: np.ndarray) -> Dict[str, np.ndarray]:
    return {"corners": np.asarray(box_xyxy, dtype=np.float32).reshape(2, 2)}


def cell_centres(grid: int) -> np.ndarray:
    return (np.arange(grid, dtype=np.float32) + 0.5) / grid


def inside_box_targets(
    box_xyxy: np.ndarray, grid: int, negative_weight: float, positive: bool = True
) -> Dict[str, np.ndarray]:
    """HCAT: labels (H*W,) 1 inside the box, weights (H*W,) 1 or negative_weight; row-major."""
    centres = cell_centres(grid)
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    inside_x = (centres >= x1) & (centres <= x2)
    inside_y = (centres >= y1) & (centres <= y2)
    labels = (inside_y[:, None] & inside_x[None, :]).reshape(-1).astype(np.float32)
    if not positive:
        labels[:] = 0.0
    elif labels.sum() == 0:  # tiny box between cell centres: its nearest cell is the positive
        cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
        ix = min(max(int(cx * grid), 0), grid - 1)
        iy = min(max(int(cy * grid), 0), grid - 1)
        labels[iy * grid + ix] = 1.0
    weights = np.where(labels > 0, 1.0, negative_weight).astype(np.float32)
    return {"cls_labels": labels, "cls_weights": weights}


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius for which a shifted box keeps IoU >= min_overlap (as OSTrack uses)."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def center_targets(box_xyxy: np.ndarray, grid: int, positive: bool = True) -> Dict[str, np.ndarray]:
    """ABTrack: heatmap (1, H, W), centre cell index, offset (2,) in [0, 1), size (2,)."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
    ix = min(max(int(math.floor(cx * grid)), 0), grid - 1)
    iy = min(max(int(math.floor(cy * grid)), 0), grid - 1)
    heatmap = np.zeros((1, grid, grid), dtype=np.float32)
    if positive:
        radius = max(0, int(gaussian_radius(h * grid, w * grid)))
        sigma = (2 * radius + 1) / 6.0
        ys, xs = np.mgrid[0:grid, 0:grid]
        blob = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
        blob[blob < np.finfo(np.float32).eps * blob.max()] = 0
        heatmap[0] = blob
        heatmap[0, iy, ix] = 1.0
    return {
        "heatmap": heatmap,
        "center_index": np.int64(iy * grid + ix),
        "offset": np.array([cx * grid - ix, cy * grid - iy], dtype=np.float32),
        "size": np.array([w, h], dtype=np.float32),
    }


def side_distribution_targets(box_xyxy: np.ndarray, bins: int) -> Dict[str, np.ndarray]:
    """MixFormerV2: (4, bins) distributions of x1, y1, x2, y2 over the bin centres."""
    position = np.clip(np.clip(np.asarray(box_xyxy, np.float64), 0, 1) * bins - 0.5, 0, bins - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, bins - 1)
    frac = position - low
    target = np.zeros((4, bins), dtype=np.float32)
    rows = np.arange(4)
    np.add.at(target, (rows, low), 1 - frac)
    np.add.at(target, (rows, high), frac)
    return {"side_distribution": target}


class LabelMaker:
    """The targets of one family (see module docstring), from a processed sample."""

    def __init__(self, family: str, grid: int, bins: int = 0, negative_weight: float = 1 / 16):
        self.family = family
        self.grid = int(grid)
        self.bins = int(bins)
        self.negative_weight = float(negative_weight)

    def __call__(self, box_xyxy: np.ndarray, positive: bool) -> Dict[str, np.ndarray]:
        if self.family in ("hit", "mixvit"):
            return corner_targets(box_xyxy)
        if self.family == "hcat":
            return inside_box_targets(box_xyxy, self.grid, self.negative_weight, positive)
        if self.family == "abtrack":
            return center_targets(box_xyxy, self.grid, positive)
        if self.family == "mixformerv2":
            return side_distribution_targets(box_xyxy, self.bins)
        raise ValueError(f"no labels for family {self.family!r}")
