"""What a target can do between two frames: limits on the box the tracker believes.

A network scores every candidate of a search crop on appearance alone. Between two camera
frames a real target's size and aspect barely change, so these helpers (the rules of the
Siamese trackers, SiamRPN / pysot) temper the raw estimate:

* :func:`change_penalty` multiplies a candidate's score by ``exp(-k (r s - 1))``, where r and
  s (both >= 1) are its change of aspect and of padded size against the previous box: a
  candidate twice as large as the target was is unlikely to be the target;
* :func:`smoothed_size` moves the box size towards the estimate at a rate that grows with the
  estimate's penalised confidence, so one bad frame cannot balloon the box;
* :class:`TileScan` orders search regions covering the whole image, nearest to where the
  target was last seen first, for looking for a lost target one crop per frame.

All of it is off in a card that leaves the defaults (``scale_penalty`` 0, ``size_lr`` 0,
``redetect_after`` 0): the papers' trackers run as their authors run them.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

Box = Tuple[float, float, float, float]


def _padded_size(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    pad = 0.5 * (w + h)
    return np.sqrt((w + pad) * (h + pad))


def change_penalty(
    w: np.ndarray, h: np.ndarray, previous: Tuple[float, float], k: float
) -> np.ndarray:
    """Per-candidate factor in (0, 1]: 1 for the previous size and aspect, falling with change.

    ``w``, ``h``: candidate sizes and ``previous``: (w, h) of the previous box, in the same
    units (the search crop's normalised coordinates).
    """
    w = np.maximum(np.asarray(w, dtype=np.float64), 1e-6)
    h = np.maximum(np.asarray(h, dtype=np.float64), 1e-6)
    w0, h0 = (max(float(v), 1e-6) for v in previous)

    def change(ratio: np.ndarray) -> np.ndarray:
        return np.maximum(ratio, 1.0 / ratio)

    aspect = change((w / h) / (w0 / h0))
    size = change(_padded_size(w, h) / _padded_size(np.array(w0), np.array(h0)))
    return np.exp(-(aspect * size - 1.0) * float(k))


def smoothed_size(
    previous: Tuple[float, float], estimate: Tuple[float, float], rate: float
) -> Tuple[float, float]:
    """``previous`` moved towards ``estimate`` by ``rate`` in [0, 1] (1: the estimate)."""
    rate = min(max(float(rate), 0.0), 1.0)
    return (
        previous[0] * (1.0 - rate) + estimate[0] * rate,
        previous[1] * (1.0 - rate) + estimate[1] * rate,
    )


class TileScan:
    """Centres of square regions of side ``side`` covering a ``width`` x ``height`` image with
    half-side overlap, nearest to ``start`` (x, y) first; ``next()`` cycles through them."""

    def __init__(self, width: int, height: int, side: float, start: Tuple[float, float]):
        step = max(0.5 * float(side), 1.0)

        def centres(length: int) -> List[float]:
            count = max(1, int(math.ceil(max(length - side, 0.0) / step)) + 1)
            if count == 1:
                return [0.5 * length]
            first, last = 0.5 * side, length - 0.5 * side
            return [first + (last - first) * i / (count - 1) for i in range(count)]

        grid = [(x, y) for y in centres(height) for x in centres(width)]
        grid.sort(key=lambda c: ((c[0] - start[0]) ** 2 + (c[1] - start[1]) ** 2, c[1], c[0]))
        self.centres = grid
        self._position = 0

    def __len__(self) -> int:
        return len(self.centres)

    def next(self) -> Tuple[float, float]:
        centre = self.centres[self._position % len(self.centres)]
        self._position += 1
        return centre
