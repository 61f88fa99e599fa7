"""Drawing the tracker's estimate onto an image (debug topic, recorded videos). No ROS."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

# BGR colours per state name.
STATE_COLOURS = {
    "IDLE": (160, 160, 160),
    "TRACKING": (60, 220, 60),
    "LOST": (40, 40, 230),
}
GROUND_TRUTH_COLOUR = (230, 180, 40)


def draw_tracking(
    image: np.ndarray,
    box: Optional[Sequence[float]],
    score: float,
    state: str,
    fps: float,
    ground_truth: Optional[Sequence[float]] = None,
    label: str = "",
) -> np.ndarray:
    """A copy of ``image`` (BGR) with the box, score, state and rate drawn on it."""
    canvas = image.copy()
    colour = STATE_COLOURS.get(state, (255, 255, 255))
    if ground_truth is not None:
        _rectangle(canvas, ground_truth, GROUND_TRUTH_COLOUR, 1)
    if box is not None and state != "IDLE":
        _rectangle(canvas, box, colour, 2)
        caption = (f"{label} {score:.2f}").strip()
        x, y = int(round(box[0])), int(round(box[1]))
        _text(canvas, caption, (x, max(14, y - 6)), colour)
    _text(canvas, f"{state}  {fps:.1f} fps", (8, 20), colour)
    return canvas


def _rectangle(canvas: np.ndarray, box: Sequence[float], colour: Tuple[int, int, int], width: int):
    x, y, w, h = (float(v) for v in box)
    top_left = (int(round(x)), int(round(y)))
    bottom_right = (int(round(x + w)), int(round(y + h)))
    cv2.rectangle(canvas, top_left, bottom_right, colour, width, cv2.LINE_AA)


def _text(canvas: np.ndarray, text: str, origin: Tuple[int, int], colour: Tuple[int, int, int]):
    # Dark outline first so the text reads on any background.
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
