"""Drawing training pairs: which frames become the template(s) and the search image.

Every draw takes an explicit ``numpy.random.Generator``, so a pair is a pure function of the
generator's seed (the dataset seeds one per sample index: reproducible whatever the number of
loader workers or processes).

* Video datasets (HCAT Sec. 4.1, and the STARK / OSTrack samplers): a sequence is chosen
  uniformly, the template frame among its visible frames, the search frame (and any further
  template, e.g. MixFormerV2's online template) among the visible frames at most ``max_gap``
  frames away.
* Image datasets (COCO): template and search come from the same image and object; the crops'
  jitter and augmentation make them differ.
* Photo datasets (``training.data.photos``): the dataset's pair maker chooses a target region
  of the photo and renders the search frame as the photo after target motion, appearance
  change, occlusion and distractors.
* Negative pairs (MixFormerV2's score head): the search frame is a frame of another item, so
  the template's target is absent from it (label 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

import numpy as np

from training.data.sequences import SourceDataset, VideoSequence


@dataclass(frozen=True)
class FrameRef:
    """One frame of one item: read it with ``item.frame(index)``; ``box`` is (x, y, w, h)."""

    item: Any
    index: int
    box: Tuple[float, float, float, float]

    def image(self) -> np.ndarray:
        return self.item.frame(self.index)


@dataclass(frozen=True)
class PairDraw:
    templates: List[FrameRef]
    search: FrameRef
    positive: bool
    dataset: str


def _ref(source: Any, box: Sequence[float]) -> FrameRef:
    return FrameRef(source, 0, tuple(float(v) for v in box))


def _frame(item: Any, index: int) -> FrameRef:
    if isinstance(item, VideoSequence):
        return FrameRef(item, int(index), tuple(float(v) for v in item.boxes[index]))
    return FrameRef(item, 0, tuple(float(v) for v in item.box))


class PairSampler:
    """Chooses datasets by weight, then items and frames (see module docstring)."""

    def __init__(self, datasets: Sequence[SourceDataset], max_gap: int, num_templates: int = 1):
        usable = [d for d in datasets if len(d) > 0 and d.weight > 0]
        if not usable:
            raise ValueError("no dataset with items and a positive weight to sample from")
        self.datasets = usable
        weights = np.asarray([d.weight for d in usable], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self.max_gap = int(max_gap)
        self.num_templates = int(num_templates)
        if self.num_templates < 1:
            raise ValueError("num_templates must be at least 1")

    def _dataset(self, rng: np.random.Generator) -> SourceDataset:
        return self.datasets[int(rng.choice(len(self.datasets), p=self.probabilities))]

    def _visible_window(self, sequence: VideoSequence, centre: int, gap: int) -> np.ndarray:
        visible = np.flatnonzero(sequence.visible)
        return visible[(visible >= centre - gap) & (visible <= centre + gap)]

    def draw(self, rng: np.random.Generator, negative: bool = False) -> PairDraw:
        """One draw; raises LookupError when the chosen item has no visible frame."""
        dataset = self._dataset(rng)
        item = dataset.items[int(rng.integers(len(dataset)))]
        if dataset.kind == "video":
            visible = np.flatnonzero(item.visible)
            if visible.size == 0:
                raise LookupError(f"{item.name}: no visible frame")
            anchor = int(rng.choice(visible))
            gap = dataset.max_gap if dataset.max_gap is not None else self.max_gap
            window = self._visible_window(item, anchor, gap)
            templates = [_frame(item, anchor)]
            templates += [
                _frame(item, int(rng.choice(window))) for _ in range(self.num_templates - 1)
            ]
            search = _frame(item, int(rng.choice(window)))
        elif dataset.kind == "photo":
            drawn, (source, box) = dataset.pairs.draw(rng, item, self.num_templates)
            templates = [_ref(frame_source, b) for frame_source, b in drawn]
            search = _ref(source, box)
        else:
            templates = [_frame(item, 0) for _ in range(self.num_templates)]
            search = _frame(item, 0)
        if negative:
            search = self._other_frame(rng, item)
        return PairDraw(templates, search, not negative, dataset.name)

    def _other_frame(self, rng: np.random.Generator, avoid: Any) -> FrameRef:
        for _ in range(10):
            dataset = self._dataset(rng)
            item = dataset.items[int(rng.integers(len(dataset)))]
            if item is avoid and (len(dataset) > 1 or len(self.datasets) > 1):
                continue
            if dataset.kind == "video":
                visible = np.flatnonzero(item.visible)
                if visible.size == 0:
                    continue
                return _frame(item, int(rng.choice(visible)))
            if dataset.kind == "photo":
                return _ref(*dataset.pairs.random_frame(rng, item))
            return _frame(item, 0)
        raise LookupError("could not find a frame of another item for a negative pair")
