"""The tracker: crops, inference backend and decoding around one target.

``Tracker(card, backend)`` follows one target through a stream of BGR images::

    tracker = Tracker(card, backend)
    tracker.initialize(first_image, (x, y, w, h))
    result = tracker.track(next_image)   # TrackResult(box, score, timings)

The template side runs once per initialisation (``backend.set_template``). Per frame the
search region (``card.search_factor`` times the previous box's geometric-mean side) is
cropped, run through ``backend.run_search`` and decoded; the box is mapped back to the image
and clipped the way the family's reference tracker does. MixFormerV2 also swaps in an online
template at a fixed interval, chosen by its score head.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ros_tracker.runtime.backends.base import InferenceBackend
from ros_tracker.runtime.box_validation import require_initial_box
from ros_tracker.runtime.boxes import Box, clamp_centre, clip_with_margin, intersect_image
from ros_tracker.runtime.crops import CropPreprocessor
from ros_tracker.runtime.decoders import make_decoder
from ros_tracker.zoo.card import ModelCard

STAGES = ("preprocess", "inference", "postprocess")

# Families whose reference code keeps the centre in the image and lets the box stick out
# (Siamese / TransT code family); the others clip with a 10 px margin (STARK code family).
_CENTRE_CLAMPED_FAMILIES = ("hcat",)


@dataclass
class TrackResult:
    """One frame's estimate: box (x, y, w, h) in image pixels, inside the image."""

    box: Box
    score: float  # confidence in [0, 1]
    timings: Dict[str, float] = field(default_factory=dict)  # stage -> milliseconds


def check_image(image: np.ndarray) -> Tuple[int, int]:
    """Validate an HxWx3 uint8 BGR image; returns (width, height)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (BGR, 0-255), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3) (BGR), got {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    return width, height


class OnlineTemplate:
    """MixFormer's online template: the best-scoring crop since the last swap, swapped in
    every ``interval`` frames.

    As in the authors' tracker, a candidate needs a score above ``threshold``; after each swap
    the candidate falls back to the initial template, so an interval without any confident
    frame brings the initial template back as the online one.
    """

    def __init__(self, interval: int, threshold: float) -> None:
        self.interval = int(interval)
        self.threshold = float(threshold)
        self.initial: Optional[np.ndarray] = None
        self.current: Optional[np.ndarray] = None
        self.candidate: Optional[np.ndarray] = None
        self.best_score = -1.0
        self.swaps = 0  # number of set_template calls made after initialisation

    def start(self, template: np.ndarray) -> None:
        self.initial = template
        self.current = template
        self.candidate = template
        self.best_score = -1.0
        self.swaps = 0

    def wants(self, score: float) -> bool:
        """Whether this frame's crop should become the candidate."""
        return score > self.threshold and score > self.best_score

    def offer(self, template: np.ndarray, score: float) -> None:
        self.candidate = template
        self.best_score = score

    def due(self, frame_index: int) -> bool:
        return self.interval > 0 and frame_index % self.interval == 0

    def swap(self) -> bool:
        """Make the candidate current; returns whether the online template changed."""
        changed = self.candidate is not self.current
        self.current = self.candidate
        self.candidate = self.initial
        self.best_score = -1.0
        return changed


class Tracker:
    """Single-target tracker over one inference backend (knows nothing of ROS)."""

    def __init__(self, card: ModelCard, backend: InferenceBackend) -> None:
        self.card = card
        self.backend = backend
        self.decode = make_decoder(card)
        self._template_input = CropPreprocessor(
            card.template_size, card.template_factor, card.mean, card.std
        )
        self._search_input = CropPreprocessor(
            card.search_size, card.search_factor, card.mean, card.std
        )
        self._clip_centre = card.family in _CENTRE_CLAMPED_FAMILIES
        self._online: Optional[OnlineTemplate] = None
        if card.online_template and len(card.template_input_names) > 1:
            self._online = OnlineTemplate(
                card.template_update_interval, card.template_update_threshold
            )
        self._box: Optional[Box] = None
        self._frame_index = 0

    # -- properties ---------------------------------------------------------------------

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def model_name(self) -> str:
        return self.card.name

    @property
    def initialized(self) -> bool:
        return self._box is not None

    @property
    def box(self) -> Optional[Box]:
        """The current target state (x, y, w, h), or None before initialisation."""
        return self._box

    @property
    def frame_index(self) -> int:
        """Frames tracked since the last initialisation."""
        return self._frame_index

    @property
    def online_template_swaps(self) -> int:
        """Online-template updates sent to the backend since initialisation (MixFormerV2)."""
        return self._online.swaps if self._online is not None else 0

    # -- API ----------------------------------------------------------------------------

    def initialize(self, image: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the target at ``box`` (x, y, w, h pixels) in ``image`` (HxWx3 BGR)."""
        width, height = check_image(image)
        start_box = require_initial_box(box, (width, height))
        template = self._crop_template(image, start_box)
        if self._online is not None:
            self._online.start(template)
        self._send_templates(template)
        self._box = start_box
        self._frame_index = 0

    def track(self, image: np.ndarray) -> TrackResult:
        """Estimate the target in the next image."""
        if self._box is None:
            raise RuntimeError("track() called before initialize()")
        width, height = check_image(image)
        timings = dict.fromkeys(STAGES, 0.0)

        start = time.perf_counter()
        search, region = self._search_input(image, self._box)
        after_crop = time.perf_counter()
        outputs = self.backend.run_search(search)
        after_inference = time.perf_counter()
        decoded = self.decode(outputs)
        estimate = region.box_to_image(*decoded.box)
        score = min(max(float(decoded.score), 0.0), 1.0)
        if not all(math.isfinite(v) for v in estimate + (score,)):
            # A broken output (NaN/inf) must not poison the state: keep the last box.
            estimate, score = self._box, 0.0
        if self._clip_centre:
            self._box = clamp_centre(estimate, width, height)
            reported = intersect_image(self._box, width, height)
        else:
            self._box = clip_with_margin(estimate, width, height)
            reported = self._box
        self._frame_index += 1
        done = time.perf_counter()

        timings["preprocess"] = (after_crop - start) * 1e3
        timings["inference"] = (after_inference - after_crop) * 1e3
        timings["postprocess"] = (done - after_inference) * 1e3
        if self._online is not None:
            self._update_online_template(image, score, timings)
        box = (float(reported[0]), float(reported[1]), float(reported[2]), float(reported[3]))
        return TrackResult(box=box, score=score, timings=timings)

    def reset(self) -> None:
        """Forget the target (the backend keeps its stale template until re-initialised)."""
        self._box = None
        self._frame_index = 0
        if self._online is not None:
            self._online = OnlineTemplate(self._online.interval, self._online.threshold)

    def close(self) -> None:
        self.reset()
        self.backend.close()

    # -- internals ----------------------------------------------------------------------

    def _crop_template(self, image: np.ndarray, box: Box) -> np.ndarray:
        tensor, _ = self._template_input(image, box)
        return tensor.copy()  # the preprocessor's buffer is reused by the next crop

    def _send_templates(self, template: np.ndarray) -> None:
        names = self.card.template_input_names
        inputs = {names[0]: template}
        for name in names[1:]:
            online = self._online.current if self._online is not None else None
            inputs[name] = online if online is not None else template
        self.backend.set_template(inputs)

    def _update_online_template(
        self, image: np.ndarray, score: float, timings: Dict[str, float]
    ) -> None:
        """Keep the best confident crop; swap it in when the interval is due.

        Its cost is charged to the stages it belongs to: cropping the candidate to
        "preprocess", re-encoding the templates to "inference".
        """
        online = self._online
        assert online is not None and self._box is not None
        if online.wants(score):
            start = time.perf_counter()
            online.offer(self._crop_template(image, self._box), score)
            timings["preprocess"] += (time.perf_counter() - start) * 1e3
        if online.due(self._frame_index) and online.swap():
            start = time.perf_counter()
            assert online.initial is not None
            self._send_templates(online.initial)
            online.swaps += 1
            timings["inference"] += (time.perf_counter() - start) * 1e3
