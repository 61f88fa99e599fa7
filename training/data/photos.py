"""Training pairs from still photographs, the way trackers pretrain on COCO.

A pair is one photo twice: the template frame is the photo itself, the search frame the same
photo after what a camera and a moving target do to an object between two frames:

* geometry: zoom, a change of aspect, a small rotation and a shift, about the target's centre
  (the target's box in the search frame is the axis-aligned box of its transformed corners);
* appearance: brightness, contrast, gamma and colour balance, a soft shadow over part of the
  frame, Gaussian or motion blur, sensor noise, JPEG re-compression;
* clutter: partial occlusion of the target by a real patch of another photo, distractor
  copies of the target (rescaled, recoloured) placed near it, and other objects near it: object
  proposals of other photos at the target's size (faces beside a face, a building beside a
  building), which the network must tell from the target by appearance rather than by being
  an object of about that size near the centre.

The target region is an object proposal of the photo (selective search, computed once when
the media cache is built: ``training.data.media``) with probability ``proposal_prob``, else a
textured region of any aspect from 1:4 to 4:1 and any side from ``min_side`` pixels up. Every
choice comes from the sample's own generator, so a pair is a pure function of its seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from training.data.sequences import read_image

Box = Tuple[float, float, float, float]

MAX_ASPECT = 4.0  # targets from 1:4 to 4:1
MIN_TEXTURE = 6.0  # grey-level standard deviation below which a region is too flat to track


@dataclass(frozen=True)
class PhotoSettings:
    """How search frames are made from a photo (probabilities per pair)."""

    proposal_prob: float = 0.6
    min_side: float = 12.0
    max_side_fraction: float = 0.25  # of the photo's shorter side: room around it to search
    zoom_sigma: float = 0.2  # log-normal
    aspect_sigma: float = 0.08  # log-normal, width against height
    rotation_sigma: float = 3.0  # degrees
    max_rotation: float = 8.0
    shift_sigma: float = 0.3  # of the target's mean side
    photometric_prob: float = 0.5
    shadow_prob: float = 0.15
    blur_prob: float = 0.3
    noise_prob: float = 0.15
    jpeg_prob: float = 0.3
    occlusion_prob: float = 0.2
    distractor_prob: float = 0.1
    other_object_prob: float = 0.0


@dataclass
class Photo:
    """One photo of the media cache and its object proposals (x, y, w, h, pixels)."""

    path: str
    width: int
    height: int
    proposals: np.ndarray  # (K, 4)
    name: str = ""

    def frame(self, index: int = 0) -> np.ndarray:
        return load_photo(self.path)


@functools.lru_cache(maxsize=24)
def load_photo(path: str) -> np.ndarray:
    """Decoded photos are kept per process: a pair reads its photo two or more times."""
    image = read_image(path)
    image.setflags(write=False)
    return image


# -- choosing the target ---------------------------------------------------------------------


def texture(image: np.ndarray, box: Sequence[float]) -> float:
    """Grey-level standard deviation inside ``box`` (sampled on a coarse grid: cheap)."""
    x, y, w, h = (float(v) for v in box)
    step = max(1, int(min(w, h) / 16))
    x0, y0 = max(int(x), 0), max(int(y), 0)
    patch = image[y0 : int(y + h) : step, x0 : int(x + w) : step]
    if patch.size == 0:
        return 0.0
    return float(patch.reshape(-1, 3).mean(axis=1).std())


def random_region(
    rng: np.random.Generator, width: int, height: int, settings: PhotoSettings
) -> Box:
    """A box of log-uniform aspect in [1/4, 4] and log-uniform mean side, inside the photo."""
    largest = settings.max_side_fraction * min(width, height)
    smallest = min(settings.min_side, largest)
    side = math.exp(rng.uniform(math.log(smallest), math.log(largest)))
    aspect = math.exp(rng.uniform(-math.log(MAX_ASPECT), math.log(MAX_ASPECT)))
    w = min(side * math.sqrt(aspect), 0.95 * width)
    h = min(side / math.sqrt(aspect), 0.95 * height)
    x = rng.uniform(0.0, width - w)
    y = rng.uniform(0.0, height - h)
    return (float(x), float(y), float(w), float(h))


def choose_target(
    rng: np.random.Generator, photo: Photo, image: np.ndarray, settings: PhotoSettings
) -> Box:
    """An object proposal, or a textured random region (flat regions cannot be tracked)."""
    if len(photo.proposals) and rng.random() < settings.proposal_prob:
        return tuple(float(v) for v in photo.proposals[int(rng.integers(len(photo.proposals)))])
    box = random_region(rng, photo.width, photo.height, settings)
    for _ in range(8):
        if texture(image, box) >= MIN_TEXTURE:
            break
        box = random_region(rng, photo.width, photo.height, settings)
    return box


# -- the search frame ------------------------------------------------------------------------


def target_motion(rng: np.random.Generator, box: Box, settings: PhotoSettings) -> np.ndarray:
    """2x3 affine matrix: zoom, aspect change, rotation and shift about the box centre."""
    x, y, w, h = box
    cx, cy = x + 0.5 * w, y + 0.5 * h
    zoom = math.exp(rng.normal(0.0, settings.zoom_sigma))
    aspect = math.exp(rng.normal(0.0, settings.aspect_sigma))
    angle = math.radians(
        float(
            np.clip(
                rng.normal(0.0, settings.rotation_sigma),
                -settings.max_rotation,
                settings.max_rotation,
            )
        )
    )
    shift = rng.normal(0.0, settings.shift_sigma, 2) * math.sqrt(w * h)
    sx, sy = zoom * math.sqrt(aspect), zoom / math.sqrt(aspect)
    cos, sin = math.cos(angle), math.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([sx, sy])
    offset = np.array([cx, cy]) + shift - linear @ np.array([cx, cy])
    return np.hstack([linear, offset[:, None]])


def transform_box(matrix: np.ndarray, box: Box) -> Box:
    """Axis-aligned box of the transformed corners of ``box``."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], float)
    moved = corners @ matrix.T
    x1, y1 = moved.min(axis=0)
    x2, y2 = moved.max(axis=0)
    return (float(x1), float(y1), float(x2 - x1), float(y2 - y1))


def _photometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    contrast = rng.uniform(0.6, 1.4)
    brightness = rng.uniform(-30.0, 30.0)
    gains = rng.uniform(0.85, 1.15, 3)
    gamma = math.exp(rng.uniform(math.log(0.7), math.log(1.4)))
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255)
    out = image.astype(np.float32) * (contrast * gains) + brightness
    out = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.LUT(out, lut.astype(np.uint8))


def _shadow(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A soft-edged darker (or brighter) half-plane across the frame."""
    height, width = image.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = (xs - rng.uniform(0, width)) * math.cos(angle) + (
        ys - rng.uniform(0, height)
    ) * math.sin(angle)
    softness = rng.uniform(0.02, 0.2) * max(width, height)
    strength = rng.uniform(0.4, 0.8) if rng.random() < 0.8 else rng.uniform(1.2, 1.5)
    blend = 1.0 / (1.0 + np.exp(-distance / softness))
    factor = 1.0 + (strength - 1.0) * blend
    return np.clip(image * factor[..., None], 0, 255).astype(np.uint8)


def _blur(rng: np.random.Generator, image: np.ndarray, target_side: float) -> np.ndarray:
    if rng.random() < 0.5:
        sigma = max(0.3, rng.uniform(0.01, 0.06) * target_side)
        return cv2.GaussianBlur(image, (0, 0), sigma)
    length = max(3, int(rng.uniform(0.03, 0.25) * target_side) | 1)
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(image, -1, kernel)


def _noise(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    noise = rng.normal(0.0, rng.uniform(2.0, 8.0), image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _jpeg(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    quality = int(rng.integers(30, 85))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else image


def _paste(image: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Copy ``patch`` with its top-left at (x, y), clipped to the image (in place)."""
    height, width = image.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + patch.shape[1], width), min(y + patch.shape[0], height)
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


def _occlude(rng: np.random.Generator, image: np.ndarray, box: Box, occluder: np.ndarray) -> None:
    """Cover part of the target (at most about half of it) with a patch of another photo."""
    x, y, w, h = box
    ow = max(2, int(w * rng.uniform(0.3, 0.7)))
    oh = max(2, int(h * rng.uniform(0.3, 0.7)))
    source_h, source_w = occluder.shape[:2]
    scale = max(ow / source_w, oh / source_h, 1e-3)
    if scale > 1.0:
        occluder = cv2.resize(occluder, None, fx=scale, fy=scale)
        source_h, source_w = occluder.shape[:2]
    sx = int(rng.integers(0, source_w - ow + 1))
    sy = int(rng.integers(0, source_h - oh + 1))
    patch = occluder[sy : sy + oh, sx : sx + ow]
    # centred anywhere on the target: a side, a corner or the middle is covered
    _paste(image, patch, int(x + rng.random() * w - 0.5 * ow), int(y + rng.random() * h - 0.5 * oh))


def _distractors(rng: np.random.Generator, image: np.ndarray, box: Box) -> List[Box]:
    """Paste one or two rescaled, recoloured copies of the target near it; their boxes."""
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, y0 = max(int(x), 0), max(int(y), 0)
    x1, y1 = min(int(math.ceil(x + w)), width), min(int(math.ceil(y + h)), height)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return []
    source = image[y0:y1, x0:x1].copy()
    placed: List[Box] = []
    side = math.sqrt(w * h)
    for _ in range(int(rng.integers(1, 3))):
        scale = rng.uniform(0.8, 1.25)
        copy = cv2.resize(source, None, fx=scale, fy=scale)
        copy = cv2.convertScaleAbs(copy, alpha=rng.uniform(0.8, 1.2), beta=rng.uniform(-20, 20))
        angle = rng.uniform(0, 2 * math.pi)
        distance = rng.uniform(1.2, 2.5) * side + 0.5 * max(copy.shape[:2])
        cx = x + 0.5 * w + distance * math.cos(angle)
        cy = y + 0.5 * h + distance * math.sin(angle)
        px, py = int(cx - 0.5 * copy.shape[1]), int(cy - 0.5 * copy.shape[0])
        _paste(image, copy, px, py)
        placed.append((float(px), float(py), float(copy.shape[1]), float(copy.shape[0])))
    return placed


def _other_objects(
    rng: np.random.Generator, image: np.ndarray, box: Box, sources: Sequence[Photo]
) -> List[Box]:
    """Paste one to three regions of other photos (object proposals where they have them),
    scaled to about the target's size and aspect, around the target; their boxes."""
    x, y, w, h = box
    side = math.sqrt(w * h)
    placed: List[Box] = []
    for source in sources:
        picture = load_photo(source.path)
        if len(source.proposals):
            region = source.proposals[int(rng.integers(len(source.proposals)))]
        else:
            region = random_region(rng, source.width, source.height, PhotoSettings())
        rx, ry, rw, rh = (int(round(float(v))) for v in region)
        patch = picture[max(ry, 0) : ry + rh, max(rx, 0) : rx + rw]
        if patch.shape[0] < 4 or patch.shape[1] < 4:
            continue
        # the target's size and, half of the time, its aspect: a look-alike in outline
        aspect = w / h if rng.random() < 0.5 else patch.shape[1] / patch.shape[0]
        target_side = side * rng.uniform(0.8, 1.25)
        pw = max(4, int(round(target_side * math.sqrt(aspect))))
        ph = max(4, int(round(target_side / math.sqrt(aspect))))
        patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
        angle = rng.uniform(0, 2 * math.pi)
        distance = rng.uniform(1.0, 2.5) * side + 0.5 * max(pw, ph)
        cx = x + 0.5 * w + distance * math.cos(angle)
        cy = y + 0.5 * h + distance * math.sin(angle)
        px, py = int(cx - 0.5 * pw), int(cy - 0.5 * ph)
        _paste(image, patch, px, py)
        placed.append((float(px), float(py), float(pw), float(ph)))
    return placed


@dataclass
class RenderedSearch:
    """The search frame of one pair, rendered when the loader reads it."""

    photo: Photo
    matrix: np.ndarray
    box: Box  # target box in the search frame
    seed: int
    settings: PhotoSettings
    occluder: Optional[Photo] = None
    others: Tuple[Photo, ...] = ()

    def frame(self, index: int = 0) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        s = self.settings
        source = load_photo(self.photo.path)
        height, width = source.shape[:2]
        image = cv2.warpAffine(
            source,
            self.matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        side = math.sqrt(self.box[2] * self.box[3])
        if rng.random() < s.distractor_prob:
            _distractors(rng, image, self.box)
        if self.others:
            _other_objects(rng, image, self.box, self.others)
        if self.occluder is not None:
            _occlude(rng, image, self.box, load_photo(self.occluder.path))
        if rng.random() < s.photometric_prob:
            image = _photometric(rng, image)
        if rng.random() < s.shadow_prob:
            image = _shadow(rng, image)
        if rng.random() < s.blur_prob:
            image = _blur(rng, image, side)
        if rng.random() < s.noise_prob:
            image = _noise(rng, image)
        if rng.random() < s.jpeg_prob:
            image = _jpeg(rng, image)
        return image


class PhotoPairs:
    """Draws (template, search) frames from a list of photos (kind "photo" of the sampler)."""

    def __init__(self, photos: Sequence[Photo], settings: Optional[PhotoSettings] = None):
        self.photos = list(photos)
        self.settings = settings or PhotoSettings()

    def draw(
        self, rng: np.random.Generator, photo: Photo, num_templates: int
    ) -> Tuple[List[Tuple[Any, Box]], Tuple[Any, Box]]:
        """[(frame source, box)] * num_templates and (frame source, box) of the search frame."""
        image = load_photo(photo.path)
        box = choose_target(rng, photo, image, self.settings)
        matrix = target_motion(rng, box, self.settings)
        occluder = None
        if len(self.photos) > 1 and rng.random() < self.settings.occlusion_prob:
            occluder = self.photos[int(rng.integers(len(self.photos)))]
        others: Tuple[Photo, ...] = ()
        if len(self.photos) > 1 and rng.random() < self.settings.other_object_prob:
            picks = rng.integers(len(self.photos), size=int(rng.integers(1, 4)))
            others = tuple(self.photos[int(i)] for i in picks if self.photos[int(i)] is not photo)
        search = RenderedSearch(
            photo,
            matrix,
            transform_box(matrix, box),
            int(rng.integers(2**31)),
            self.settings,
            occluder,
            others,
        )
        return [(photo, box)] * num_templates, (search, search.box)

    def random_frame(self, rng: np.random.Generator, photo: Photo) -> Tuple[Any, Box]:
        """A region of ``photo`` as an unrelated search frame (negative pairs)."""
        return photo, random_region(rng, photo.width, photo.height, self.settings)


def photo_settings(values: Dict[str, Any]) -> PhotoSettings:
    """PhotoSettings from a config mapping (unknown keys are a config error upstream)."""
    return PhotoSettings(**values)
