"""Tiny dataset trees in the benchmarks' layouts, written by the tests."""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[float, float, float, float]


def write_frames(folder: str, count: int, names: Sequence[str] = (), size=(64, 48)) -> None:
    """``count`` tiny images; blank files are enough where only the names matter."""
    os.makedirs(folder, exist_ok=True)
    names = list(names) or [f"{i + 1:04d}.jpg" for i in range(count)]
    for name in names[:count]:
        open(os.path.join(folder, name), "wb").close()


def moving_square_frames(folder: str, count: int, seed: int = 0, size=(64, 48)) -> List[Box]:
    """Real images: a textured square moving over a smooth textured background."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = cv2.GaussianBlur(
        rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (7, 7), 2
    )
    patch = rng.integers(0, 255, (14, 12, 3), dtype=np.uint8)
    os.makedirs(folder, exist_ok=True)
    boxes = []
    for i in range(count):
        image = background.copy()
        x, y = 10 + 3 * i, 12 + (seed + 1) * i
        image[y : y + 14, x : x + 12] = patch
        cv2.imwrite(os.path.join(folder, f"{i + 1:04d}.png"), image)
        boxes.append((float(x), float(y), 12.0, 14.0))
    return boxes


def otb_tree(root: str, sequences: int = 2, frames: int = 6) -> List[List[Box]]:
    """OTB layout with real (tiny) images; ground truth tab separated."""
    truth = []
    for s in range(sequences):
        seq_dir = os.path.join(root, f"Seq{s}")
        boxes = moving_square_frames(os.path.join(seq_dir, "img"), frames, seed=s)
        with open(os.path.join(seq_dir, "groundtruth_rect.txt"), "w") as handle:
            handle.write("\n".join("\t".join(f"{v:g}" for v in b) for b in boxes) + "\n")
        truth.append(boxes)
    return truth
