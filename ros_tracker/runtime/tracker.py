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

Cards may also ask for the box policy of runtime.motion_prior: a penalty on candidates that
change size or aspect (``scale_penalty``), a size that follows the estimate gradually
(``size_lr``), and, after ``redetect_after`` weak frames in a row, a search for the lost
target over the whole image, one crop per frame (alternately where it was last seen and the
next region of a scan), until a candidate is confident again. runtime.appearance_check
compares boxes with the target as it looked at initialisation: ``appearance_rerank`` takes,
among the network's best distinct candidates, the one most like it, and
``appearance_weight`` weighs the likeness into the confidence, so that it falls when the
network has moved to something else; with ``distractor_weight`` the candidates the network
ranked high on the initialisation frame away from the target are remembered as distractors,
and a candidate that looks more like one of them than like the target is ranked lower.
runtime.size_calibration corrects the network's box size by what it got wrong on the
initialisation frame (``size_calibration``); runtime.box_refinement moves the box to where
the target's first look matches best nearby, at its size or a little smaller or larger
(``box_refinement``; the re-ranking then judges each candidate where it would be moved to),
and ``match_weight`` weighs how well it matched into the confidence.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ros_tracker.runtime.appearance_check import AppearanceCheck, checked_confidence
from ros_tracker.runtime.backends.base import InferenceBackend
from ros_tracker.runtime.box_refinement import BoxRefinement
from ros_tracker.runtime.box_validation import require_initial_box
from ros_tracker.runtime.boxes import (
    Box,
    box_iou,
    clamp_centre,
    clip_with_margin,
    intersect_image,
)
from ros_tracker.runtime.crops import CropPreprocessor, CropTransform
from ros_tracker.runtime.decoders import Decoded, make_decoder
from ros_tracker.runtime.motion_prior import TileScan, smoothed_size
from ros_tracker.runtime.size_calibration import SizeCalibration
from ros_tracker.runtime.target_state import TargetState, TargetStateMachine
from ros_tracker.zoo.card import ModelCard

STAGES = ("preprocess", "inference", "postprocess")

# Families whose reference code keeps the centre in the image and lets the box stick out
# (Siamese / TransT code family); the others clip with a margin (STARK code family); both keep
# sides of at least card.min_box_side (10 px in the reference code).
_CENTRE_CLAMPED_FAMILIES = ("hcat",)
# A candidate on the initialisation frame overlapping the target's box less than this is
# something else (card.distractor_weight)
DISTRACTOR_IOU = 0.2


@dataclass
class TrackResult:
    """One frame's estimate: box (x, y, w, h) in image pixels, inside the image."""

    box: Box
    score: float  # confidence in [0, 1]
    timings: Dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    searching: bool = False  # this frame looked for a lost target away from its last box


def _resized(box: Box, size: Tuple[float, float]) -> Box:
    """``box`` with the same centre and the given (w, h)."""
    cx, cy = box[0] + 0.5 * box[2], box[1] + 0.5 * box[3]
    return cx - 0.5 * size[0], cy - 0.5 * size[1], size[0], size[1]


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
            card.template_size, card.template_factor, card.mean, card.std, card.crop_style
        )
        self._search_input = CropPreprocessor(
            card.search_size, card.search_factor, card.mean, card.std, card.crop_style
        )
        self._clip_centre = card.family in _CENTRE_CLAMPED_FAMILIES
        self._online: Optional[OnlineTemplate] = None
        if card.online_template and len(card.template_input_names) > 1:
            self._online = OnlineTemplate(
                card.template_update_interval, card.template_update_threshold
            )
        self._box: Optional[Box] = None
        self._template_box: Optional[np.ndarray] = None  # (1, 4) for card.template_box_input
        self._frame_index = 0
        # Search for a lost target (card.redetect_after): weak frames, last believed box, scan.
        self._weak = TargetStateMachine(card.redetect_threshold, max(card.redetect_after, 1))
        self._last_good: Optional[Box] = None
        self._scan: Optional[TileScan] = None
        self._scan_step = 0
        self._appearance: Optional[AppearanceCheck] = None
        if card.appearance_weight > 0.0 or card.appearance_rerank > 0.0:
            self._appearance = AppearanceCheck()
        self._refinement: Optional[BoxRefinement] = None
        if card.box_refinement > 0.0:
            self._refinement = BoxRefinement(card.box_refinement)
        self._calibration: Optional[SizeCalibration] = None
        if card.size_calibration > 0.0:
            self._calibration = SizeCalibration(card.size_calibration)
        if card.match_weight > 0.0 and card.box_refinement <= 0.0:
            raise ValueError(f"{card.name}: match_weight needs box_refinement, which is off")
        if card.distractor_weight > 0.0 and card.appearance_rerank <= 0.0:
            raise ValueError(
                f"{card.name}: distractor_weight acts through appearance_rerank, which is off"
            )
        if card.appearance_rerank > 0.0 and not hasattr(self.decode, "candidates"):
            raise ValueError(
                f"{card.name}: appearance_rerank needs a decoder that scores every cell (hcat)"
            )

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
        self._template_input.start(image)
        self._search_input.start(image)
        template = self._crop_template(image, start_box)
        self._template_box = self._box_in_template(start_box)
        if self._online is not None:
            self._online.start(template)
        self._send_templates(template)
        if self._appearance is not None:
            self._appearance.start(image, start_box)
        search = _SearchOnce(lambda around: self._search(image, around))
        if self._calibration is not None:
            self._calibration.fit(start_box, lambda around: self._raw_estimate(search, around))
        if self._refinement is not None:
            self._refinement.start(image, start_box)
        if self._appearance is not None and self.card.distractor_weight > 0.0:
            self._remember_distractors(image, start_box, search)
        self._box = start_box
        self._last_good = start_box
        self._scan = None
        self._weak.start()
        self._frame_index = 0

    def track(self, image: np.ndarray) -> TrackResult:
        """Estimate the target in the next image."""
        if self._box is None:
            raise RuntimeError("track() called before initialize()")
        width, height = check_image(image)
        timings = dict.fromkeys(STAGES, 0.0)
        searching = self._weak.state == TargetState.LOST
        around = self._scan_region(width, height) if searching else self._box

        start = time.perf_counter()
        search, region = self._search_input(image, around)
        after_crop = time.perf_counter()
        outputs = self.backend.run_search(search)
        after_inference = time.perf_counter()
        prior = (around[2] / region.side, around[3] / region.side)
        if self.card.appearance_rerank > 0.0:
            decoded = self._pick_by_appearance(image, outputs, prior, region, not searching)
        else:
            decoded = self._decoded(outputs, prior, not searching)
        estimate = region.box_to_image(*decoded.box)
        score = min(max(float(decoded.score), 0.0), 1.0)
        if not all(math.isfinite(v) for v in estimate + (score,)):
            # A broken output (NaN/inf) must not poison the state: keep the last box.
            estimate, score = self._box, 0.0
        elif self.card.size_lr > 0.0:
            estimate = _resized(
                estimate,
                smoothed_size(
                    around[2:], estimate[2:], self.card.size_lr * decoded.penalty * score
                ),
            )
        if self._refinement is not None and not searching and score > 0.0:
            estimate = self._refinement.refine(image, estimate)
            if self.card.match_weight > 0.0:
                match = self._refinement.last_match
                match = min(max(match, 0.0), 1.0) if math.isfinite(match) else 0.0
                score = checked_confidence(score, match, self.card.match_weight)
        if self._appearance is not None and self.card.appearance_weight > 0.0 and score > 0.0:
            similarity = self._appearance.similarity(image, estimate)
            score = checked_confidence(score, similarity, self.card.appearance_weight)
        estimate = self._follow(estimate, score)
        if self._clip_centre:
            self._box = clamp_centre(estimate, width, height, self.card.min_box_side)
            reported = intersect_image(self._box, width, height)
        else:
            self._box = clip_with_margin(estimate, width, height, self.card.min_box_side)
            reported = self._box
        self._frame_index += 1
        done = time.perf_counter()

        timings["preprocess"] = (after_crop - start) * 1e3
        timings["inference"] = (after_inference - after_crop) * 1e3
        timings["postprocess"] = (done - after_inference) * 1e3
        if self._online is not None:
            self._update_online_template(image, score, timings)
        box = (float(reported[0]), float(reported[1]), float(reported[2]), float(reported[3]))
        return TrackResult(box=box, score=score, timings=timings, searching=searching)

    def search_outputs(self, image: np.ndarray, box: Sequence[float]) -> Dict[str, np.ndarray]:
        """The network's raw outputs for the search crop around ``box`` in ``image`` against
        the current template, leaving the tracker's state as it was (diagnostics)."""
        if self._box is None:
            raise RuntimeError("search_outputs() called before initialize()")
        check_image(image)
        outputs, _ = self._search(image, tuple(float(v) for v in box))
        return dict(outputs)

    def reset(self) -> None:
        """Forget the target (the backend keeps its stale template until re-initialised)."""
        self._box = None
        self._frame_index = 0
        self._weak.reset()
        self._scan = None
        if self._online is not None:
            self._online = OnlineTemplate(self._online.interval, self._online.threshold)

    def close(self) -> None:
        self.reset()
        self.backend.close()

    # -- internals ----------------------------------------------------------------------

    def _follow(self, estimate: Box, score: float) -> Box:
        """The box to believe after this frame, and the weak-frame bookkeeping that starts or
        ends the search for a lost target (card.redetect_after; off when 0)."""
        if self.card.redetect_after <= 0:
            return estimate
        state = self._weak.update(score)
        if state == TargetState.TRACKING:
            if score >= self._weak.lost_threshold:
                self._last_good = estimate
            self._scan = None  # a later loss scans again from where the target was last good
            return estimate
        # lost: a weak candidate is not the target, so stay where it was last seen
        return self._last_good if self._last_good is not None else estimate

    def _decoded(
        self, outputs: Dict[str, np.ndarray], prior: Tuple[float, float], window: bool
    ) -> Decoded:
        """The decoder's pick, its size corrected (card.size_calibration)."""
        if self._calibration is None:
            return self.decode(outputs, prior=prior, window=window)
        prior = self._calibration.network_prior(prior)
        return self._calibration.corrected(self.decode(outputs, prior=prior, window=window))

    def _search(
        self, image: np.ndarray, around: Box
    ) -> Tuple[Dict[str, np.ndarray], CropTransform]:
        """The network's raw outputs for the search crop around ``around``, and the crop."""
        crop, region = self._search_input(image, around)
        return self.backend.run_search(crop), region

    def _raw_estimate(self, search: _SearchOnce, around: Box) -> Optional[Box]:
        """The network's uncorrected box (image pixels) for a search around ``around``."""
        outputs, region = search(around)
        decoded = self.decode(outputs, prior=(around[2] / region.side, around[3] / region.side))
        return region.box_to_image(*decoded.box)

    def _remember_distractors(self, image: np.ndarray, box: Box, search: _SearchOnce) -> None:
        """The network's strong candidates on the initialisation frame that are not the target
        (overlap below DISTRACTOR_IOU), kept by the appearance check."""
        assert self._appearance is not None
        outputs, region = search(box)
        prior = (box[2] / region.side, box[3] / region.side)
        for candidate in self._candidates(outputs, prior, window=False):
            found = region.box_to_image(*candidate.box)
            if box_iou(found, box) < DISTRACTOR_IOU:
                self._appearance.add_distractor(image, found)

    def _candidates(
        self, outputs: Dict[str, np.ndarray], prior: Tuple[float, float], window: bool
    ) -> List[Decoded]:
        """The decoder's best distinct candidates, their sizes corrected."""
        calibration = self._calibration
        if calibration is None:
            return self.decode.candidates(outputs, prior=prior, window=window)
        prior = calibration.network_prior(prior)
        return [
            calibration.corrected(c)
            for c in self.decode.candidates(outputs, prior=prior, window=window)
        ]

    def _pick_by_appearance(
        self,
        image: np.ndarray,
        outputs: Dict[str, np.ndarray],
        prior: Tuple[float, float],
        region: CropTransform,
        window: bool,
    ) -> Decoded:
        """Among the network's best distinct candidates, the one most like the target at
        initialisation: a network that follows objects rather than its template ranks a
        similar object beside the target as high as the target (card.appearance_rerank weighs
        the likeness against the network's ranking). With the box refinement each candidate
        is judged where it would be refined to: a candidate a few pixels off the target
        looks less like it than a patch of similar texture does."""
        assert self._appearance is not None
        weight = self.card.appearance_rerank
        candidates = self._candidates(outputs, prior, window)
        values = []
        for candidate in candidates:
            box = region.box_to_image(*candidate.box)
            if self._refinement is not None:
                box, _ = self._refinement.refined(image, box)
            similarity = self._appearance.distinct_similarity(
                image, box, self.card.distractor_weight
            )
            value = candidate.ranking * (1.0 - weight + weight * similarity)
            values.append(value if math.isfinite(value) else -1.0)  # broken outputs last
        return candidates[int(np.argmax(values))]  # the best-ranked cell is always one

    def _scan_region(self, width: int, height: int) -> Box:
        """Where to look for a lost target this frame: every other frame where it was last
        seen, in between the next region of a scan of the whole image (at its last size)."""
        last = self._last_good if self._last_good is not None else self._box
        assert last is not None
        x, y, w, h = last
        if self._scan is None:
            side = self.card.search_factor * math.sqrt(w * h)
            self._scan = TileScan(width, height, side, (x + 0.5 * w, y + 0.5 * h))
            self._scan_step = 0
        self._scan_step += 1
        if self._scan_step % 2 == 1:
            return last
        cx, cy = self._scan.next()
        return cx - 0.5 * w, cy - 0.5 * h, w, h

    def _crop_template(self, image: np.ndarray, box: Box) -> np.ndarray:
        tensor, _ = self._template_input(image, box)
        return tensor.copy()  # the preprocessor's buffer is reused by the next crop

    def _box_in_template(self, box: Box) -> Optional[np.ndarray]:
        """The box in the initial template crop's coordinates (x1, y1, x2, y2), where the
        network takes it."""
        if not self.card.template_box_input:
            return None
        corners = self._template_input.region(box).corners_to_crop(box)
        return np.array([corners], dtype=np.float32)

    def _send_templates(self, template: np.ndarray) -> None:
        names = self.card.template_input_names
        inputs = {names[0]: template}
        for name in names[1:]:
            online = self._online.current if self._online is not None else None
            inputs[name] = online if online is not None else template
        if self.card.template_box_input:
            assert self._template_box is not None
            inputs[self.card.template_box_input] = self._template_box
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


class _SearchOnce:
    """The network's outputs for searches of one frame, each region run once: the size
    calibration and the distractor search both search the initialisation frame around the
    given box."""

    def __init__(self, run: Callable[[Box], Tuple[Dict[str, np.ndarray], CropTransform]]) -> None:
        self._run = run
        self._done: Dict[Tuple[float, ...], Tuple[Dict[str, np.ndarray], CropTransform]] = {}

    def __call__(self, around: Box) -> Tuple[Dict[str, np.ndarray], CropTransform]:
        key = tuple(round(float(v), 3) for v in around)  # equal boxes up to rounding
        if key not in self._done:
            outputs, region = self._run(around)
            # copied: a backend may hand out the same output buffers on its next run
            self._done[key] = ({k: np.array(v, copy=True) for k, v in outputs.items()}, region)
        return self._done[key]
