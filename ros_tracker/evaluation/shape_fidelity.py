"""Does a tracker give back the box it was handed? Targets of every shape on real photographs.

A tracker initialised on a box and asked for the target in the very same frame, or in a small
shift or zoom of it, should answer with that box. The cases: targets of aspect 1:4 to 4:1
(width / height) and sizes 12 to 300 px (the geometric mean of the sides) on textured parts
of scikit-image's photographs, each tracked in four frames (the same frame, a shift by 15 %
of the width and -10 % of the height, a 10 % zoom in and a 10 % zoom out). A tracker that
answers with its own idea of what an object looks like fails here: the default shipped before
this check existed returned 89x57 px for a 25x101 px walker.

Used by the test of the shipped default (test/zoo/test_default_tracker_shapes.py) and by
``bench/shape_fidelity.py``, which prints the figures for any model and box policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Sequence, Tuple

import cv2
import numpy as np

from ros_tracker.evaluation.metrics import overlaps
from ros_tracker.runtime.boxes import Box

ASPECTS = (0.25, 0.5, 1.0, 2.0, 4.0)
SIDES = (12.0, 30.0, 80.0, 200.0, 300.0)
VARIANTS = ("same", "shift", "zoom_in", "zoom_out")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def photos() -> List[Tuple[str, np.ndarray]]:
    """scikit-image's photographs as BGR images (ImportError without scikit-image)."""
    from skimage import data

    result = []
    for name in PHOTOS:
        image = getattr(data, name)()
        code = cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR
        result.append((name, cv2.cvtColor(image, code)))
    return result


def _textured_box(rng: np.random.Generator, image: np.ndarray, w: float, h: float) -> Box:
    """A box of size (w, h) on a textured part of the photo (a flat patch has no shape)."""
    height, width = image.shape[:2]
    best, best_texture = (0.0, 0.0, w, h), -1.0
    for _ in range(30):
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        texture = float(image[int(y) : int(y + h), int(x) : int(x + w)].std())
        if texture > best_texture:
            best, best_texture = (x, y, w, h), texture
        if texture > 25.0:
            break
    return best


def variant(image: np.ndarray, box: Box, kind: str) -> Tuple[np.ndarray, Box]:
    """The frame to track for ``kind`` and where the target is in it."""
    x, y, w, h = box
    height, width = image.shape[:2]
    if kind == "same":
        return image, box
    if kind == "shift":
        dx, dy = 0.15 * w, -0.1 * h
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = (x + dx, y + dy, w, h)
    elif kind in ("zoom_in", "zoom_out"):
        zoom = 1.1 if kind == "zoom_in" else 0.9
        cx, cy = x + w / 2, y + h / 2
        matrix = np.float32([[zoom, 0, cx - zoom * cx], [0, zoom, cy - zoom * cy]])
        moved = (cx - zoom * w / 2, cy - zoom * h / 2, zoom * w, zoom * h)
    else:
        raise ValueError(f"unknown variant {kind!r}; known: {', '.join(VARIANTS)}")
    frame = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    return frame, moved


@dataclass(frozen=True)
class Case:
    photo: str
    aspect: float
    side: float
    kind: str
    given: Box  # the box handed to the tracker on the photo
    truth: Box  # where the target is in the tracked frame
    found: Box  # what the tracker answered

    @property
    def iou(self) -> float:
        return float(overlaps(np.array([self.found]), np.array([self.truth]))[0])

    @property
    def shape_error(self) -> float:
        """The larger factor by which the found width or height is off (1.0 = exact)."""
        ratios = (self.found[2] / self.truth[2], self.found[3] / self.truth[3])
        return max(max(r, 1.0 / r) for r in ratios)

    def describe(self) -> str:
        return (
            f"{self.photo} aspect {self.aspect} side {self.side:.0f} {self.kind}: IoU "
            f"{self.iou:.2f} (target {self.truth[2]:.0f}x{self.truth[3]:.0f}, returned "
            f"{self.found[2]:.0f}x{self.found[3]:.0f})"
        )


@dataclass
class ShapeReport:
    cases: List[Case] = field(default_factory=list)

    def ious(self) -> np.ndarray:
        return np.array([c.iou for c in self.cases])

    def below(self, threshold: float) -> List[Case]:
        return [c for c in self.cases if c.iou < threshold]

    def summary(self, threshold: float = 0.7) -> str:
        ious = self.ious()
        lines = [
            f"{len(self.cases)} cases: IoU median {np.median(ious):.3f}, mean {ious.mean():.3f}; "
            f"{len(self.below(threshold))} under {threshold}; shape off by more than 1.5x in "
            f"{sum(c.shape_error > 1.5 for c in self.cases)}"
        ]
        for side in sorted({c.side for c in self.cases}):
            group = [c for c in self.cases if c.side == side]
            values = np.array([c.iou for c in group])
            lines.append(
                f"  side {side:5.0f} px: {len(group):3d} cases, IoU median "
                f"{np.median(values):.3f}, under {threshold}: {int((values < threshold).sum())}"
            )
        return "\n".join(lines)


def cases(
    images: Sequence[Tuple[str, np.ndarray]], seed: int = 0
) -> Iterator[Tuple[str, float, float, np.ndarray, Box]]:
    """(photo name, aspect, side, photo, box) for every target that fits the photo."""
    rng = np.random.default_rng(seed)
    for name, image in images:
        height, width = image.shape[:2]
        for aspect in ASPECTS:
            for side in SIDES:
                w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
                if w > 0.9 * width or h > 0.9 * height:
                    continue
                yield name, aspect, side, image, _textured_box(rng, image, w, h)


def check_shapes(
    initialize: Callable[[np.ndarray, Box], None],
    track: Callable[[np.ndarray], Box],
    images: Sequence[Tuple[str, np.ndarray]],
    seed: int = 0,
) -> ShapeReport:
    """Initialise on each case's photo and track each variant frame once."""
    report = ShapeReport()
    for name, aspect, side, image, box in cases(images, seed):
        for kind in VARIANTS:
            frame, truth = variant(image, box, kind)
            initialize(image, box)
            found = tuple(float(v) for v in track(frame))
            report.cases.append(Case(name, aspect, side, kind, box, truth, found))
    return report
