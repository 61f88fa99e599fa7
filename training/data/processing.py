"""From drawn frames to network inputs: jittered context crops and augmentation.

Per pair, following the STARK / OSTrack processing the papers' code bases share:

1. grayscale the whole pair with ``grayscale_prob`` (joint);
2. jitter each box: size x exp(N(0, scale_jitter)) per side, centre moved uniformly within
   +-0.5 x center_jitter x sqrt(jittered area) (templates use their own, usually zero,
   jitter);
3. cut the square context region (side sqrt(w h) x factor: template 2x, search 4x, 4.5x for
   MixFormerV2) with the runtime's own crop (``ros_tracker.runtime.crops``: the same one
   warpAffine, mean-colour padding and pixel convention as at inference);
4. per crop: brightness x U(1 - b, 1 + b), Gaussian blur with ``blur_prob``;
5. flip every crop of the pair horizontally with ``flip_prob`` (joint, boxes mirrored);
6. normalise with the card's mean / std (the runtime's Normalizer), RGB, CHW float32.

The search box is returned normalised to the search crop (x1, y1, x2, y2), each template's box
normalised to its crop (for networks that take the template box). A draw whose
search crop does not contain the target's centre, or whose target is too small, is rejected
(the caller draws again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ros_tracker.runtime.crops import Normalizer, context_region, crop_region

Box = Tuple[float, float, float, float]


@dataclass(frozen=True)
class CropSettings:
    template_size: int
    search_size: int
    template_factor: float
    search_factor: float
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    center_jitter_template: float = 0.0
    center_jitter_search: float = 3.0
    scale_jitter_template: float = 0.0
    scale_jitter_search: float = 0.25
    brightness_jitter: float = 0.2
    grayscale_prob: float = 0.05
    flip_prob: float = 0.5
    blur_prob: float = 0.0
    blur_sigma: float = 1.0
    min_box_pixels: float = 4.0


def jitter_box(rng: np.random.Generator, box: Sequence[float], center: float, scale: float) -> Box:
    """Scale and centre jitter of an (x, y, w, h) box (pytracking's rule)."""
    x, y, w, h = (float(v) for v in box)
    size = np.array([w, h]) * np.exp(rng.standard_normal(2) * scale)
    max_offset = math.sqrt(float(size.prod())) * center
    centre = np.array([x + 0.5 * w, y + 0.5 * h]) + max_offset * (rng.random(2) - 0.5)
    return (
        float(centre[0] - 0.5 * size[0]),
        float(centre[1] - 0.5 * size[1]),
        float(size[0]),
        float(size[1]),
    )


def box_in_crop(box: Sequence[float], region) -> np.ndarray:
    """(x, y, w, h) in image pixels -> (x1, y1, x2, y2) normalised to the crop."""
    x, y, w, h = (float(v) for v in box)
    x1, y1 = region.to_crop(x, y)
    x2, y2 = region.to_crop(x + w, y + h)
    return np.array([x1, y1, x2, y2], dtype=np.float32)


def mirrored(box_xyxy: np.ndarray) -> np.ndarray:
    """A crop-normalised (x1, y1, x2, y2) box after a horizontal flip of the crop."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    return np.array([1.0 - x2, y1, 1.0 - x1, y2], dtype=np.float32)


class PairProcessor:
    """Callable: (rng, template images+boxes, search image+box) -> inputs or None."""

    def __init__(self, settings: CropSettings) -> None:
        self.settings = settings
        self._normalizers: Dict[int, Normalizer] = {}

    def _normalize(self, crop: np.ndarray) -> np.ndarray:
        size = crop.shape[0]
        if size not in self._normalizers:
            self._normalizers[size] = Normalizer(size, self.settings.mean, self.settings.std)
        return self._normalizers[size](crop)[0].copy()

    def _crop(
        self,
        rng: np.random.Generator,
        image: np.ndarray,
        box: Sequence[float],
        factor: float,
        size: int,
        center_jitter: float,
        scale_jitter: float,
    ) -> Tuple[np.ndarray, np.ndarray]:
        jittered = jitter_box(rng, box, center_jitter, scale_jitter)
        region = context_region(jittered, factor, size)
        return crop_region(image, region), box_in_crop(box, region)

    def _photometric(self, rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
        s = self.settings
        if s.brightness_jitter > 0:
            factor = rng.uniform(max(0.0, 1.0 - s.brightness_jitter), 1.0 + s.brightness_jitter)
            crop = cv2.convertScaleAbs(crop, alpha=float(factor))
        if s.blur_prob > 0 and rng.random() < s.blur_prob:
            sigma = float(rng.uniform(0.2, max(s.blur_sigma, 0.2)))
            crop = cv2.GaussianBlur(crop, (0, 0), sigma)
        return crop

    def __call__(
        self,
        rng: np.random.Generator,
        templates: Sequence[Tuple[np.ndarray, Sequence[float]]],
        search: Tuple[np.ndarray, Sequence[float]],
        positive: bool = True,
    ) -> Optional[Dict[str, np.ndarray]]:
        s = self.settings
        grayscale = s.grayscale_prob > 0 and rng.random() < s.grayscale_prob
        crops: List[np.ndarray] = []
        template_boxes: List[np.ndarray] = []
        for image, box in templates:
            if min(box[2], box[3]) < s.min_box_pixels:
                return None
            crop, template_box = self._crop(
                rng,
                image,
                box,
                s.template_factor,
                s.template_size,
                s.center_jitter_template,
                s.scale_jitter_template,
            )
            crops.append(crop)
            template_boxes.append(template_box)
        image, box = search
        if min(box[2], box[3]) < s.min_box_pixels:
            return None
        search_crop, search_box = self._crop(
            rng,
            image,
            box,
            s.search_factor,
            s.search_size,
            s.center_jitter_search,
            s.scale_jitter_search,
        )
        if positive:
            centre = 0.5 * (search_box[:2] + search_box[2:])
            if not ((centre > 0).all() and (centre < 1).all()):
                return None
        crops.append(search_crop)
        crops = [self._photometric(rng, c) for c in crops]
        if grayscale:
            crops = [
                cv2.cvtColor(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for c in crops
            ]
        if s.flip_prob > 0 and rng.random() < s.flip_prob:
            crops = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
            search_box = mirrored(search_box)
            template_boxes = [mirrored(b) for b in template_boxes]
        normalised = [self._normalize(c) for c in crops]
        return {
            "templates": np.stack(normalised[:-1]),
            "template_boxes": np.stack(template_boxes).astype(np.float32),
            "search": normalised[-1],
            "search_box": search_box.astype(np.float32),
            "positive": np.float32(1.0 if positive else 0.0),
        }
