"""Does the network look at its template? Score maps under the target's template and others'.

A Siamese network is meant to find *its* template in the search crop. One that has learnt what
objects look like instead scores every object-like region alike whichever template it is given:
it stays on the most salient thing near the target and leaves for a similar object at once,
with a confidence that does not fall when the target has gone. Measured on initialisation
frames: the score map of the search crop around each target under the target's own template
and under the templates of other targets (other frames):

* ``similarity``: Pearson correlation of the two maps (1: the template changes nothing;
  a network that matches its template scores a foreign one low everywhere);
* ``own_centre`` / ``foreign_centre``: mean probability of the cells at the target's centre,
  under its own template and under the foreign ones.

Used by training validation (the first frame of each validation sequence) and by
``bench/template_dependence.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from ros_tracker.evaluation.readers import Sequence as EvalSequence
from ros_tracker.runtime.appearance_check import correlation
from ros_tracker.runtime.boxes import Box
from ros_tracker.runtime.decoders import score_map
from ros_tracker.runtime.tracker import Tracker

Frame = Tuple[str, np.ndarray, Box]  # name, BGR image, target box (x, y, w, h)


@dataclass(frozen=True)
class FrameDependence:
    name: str
    similarity: float
    own_centre: float
    foreign_centre: float


@dataclass(frozen=True)
class TemplateDependence:
    similarity: float
    own_centre: float
    foreign_centre: float
    frames: Tuple[FrameDependence, ...]

    def lines(self) -> List[str]:
        """A table for people: one line per frame, then the means."""
        rows = [f"{'frame':24s} {'similarity':>10s} {'own centre':>10s} {'foreign':>8s}"]
        for f in self.frames:
            rows.append(
                f"{f.name:24s} {f.similarity:10.2f} {f.own_centre:10.2f} {f.foreign_centre:8.2f}"
            )
        rows.append(
            f"{'mean':24s} {self.similarity:10.2f} {self.own_centre:10.2f} "
            f"{self.foreign_centre:8.2f}"
        )
        return rows


def centre_cells(grid: np.ndarray) -> np.ndarray:
    """The cells at the crop's centre, where the target is: 2x2 on an even grid, 1 on odd."""
    height, width = grid.shape
    rows = slice((height - 1) // 2, height // 2 + 1)
    cols = slice((width - 1) // 2, width // 2 + 1)
    return grid[rows, cols]


def measure_template_dependence(
    tracker: Tracker, frames: Sequence[Frame], foreign: int = 3
) -> TemplateDependence:
    """Figures over ``frames`` (two or more), each searched under its own template and the
    templates of the next ``foreign`` frames (cyclically). Re-initialises ``tracker``."""
    if len(frames) < 2:
        raise ValueError("template dependence needs two or more frames (foreign templates)")
    count = max(1, min(int(foreign), len(frames) - 1))
    maps = {}

    def search_map(template: int, search: int) -> np.ndarray:
        key = (template, search)
        if key not in maps:
            _, image, box = frames[template]
            tracker.initialize(image, box)
            _, search_image, search_box = frames[search]
            maps[key] = score_map(tracker.card, tracker.search_outputs(search_image, search_box))
        return maps[key]

    results = []
    for index, (name, _, _) in enumerate(frames):
        own = search_map(index, index)
        others = [search_map((index + k) % len(frames), index) for k in range(1, count + 1)]
        results.append(
            FrameDependence(
                name=name,
                # a constant map does not change with the template: similarity 1
                similarity=float(np.mean([correlation(own, m, 1.0) for m in others])),
                own_centre=float(centre_cells(own).mean()),
                foreign_centre=float(np.mean([centre_cells(m).mean() for m in others])),
            )
        )
    tracker.reset()
    return TemplateDependence(
        similarity=float(np.mean([r.similarity for r in results])),
        own_centre=float(np.mean([r.own_centre for r in results])),
        foreign_centre=float(np.mean([r.foreign_centre for r in results])),
        frames=tuple(results),
    )


def first_frames(sequences: Sequence[EvalSequence]) -> List[Frame]:
    """(name, first image, first box) of evaluation sequences (readers.Sequence)."""
    from ros_tracker.evaluation.runner import read_image

    return [(s.name, read_image(s.frames[0]), s.initial_box) for s in sequences]
