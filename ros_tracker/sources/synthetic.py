"""The built-in synthetic scene: a photographed object moving over a panning photographed scene.

Why: a tracker demo and the pipeline tests need a moving target with exact ground truth on any
machine, without datasets or a camera. The target (a cat's face cut out as an ellipse) and the
background (a coffee cup on a wooden table) are real photographs shipped in ``assets/`` (see
``assets/ASSETS.md``), so the tracker sees natural texture rather than flat shapes.

Every frame is a pure function of (frame index, constructor arguments): the seed fixes the
motion parameters once, and ``render(i)`` can be called in any order. Per frame the cost is a
whole-pixel crop of the background (the pan moves in whole pixels: a copy, no resampling) and
one ``cv2.warpAffine`` of the target (colour and alpha together) into the target's bounding
rectangle, blended there with ``cv2.blendLinear``.

Motion: the target centre follows a sum of two sinusoids per axis, its scale swings over
[1/1.3, 1.3] of its base size, with mild rotation (up to 12 degrees) and brightness change
(+-20 %); the path keeps the target wholly inside the frame. Optional segments:
- ``occlusion``: a wooden post slides across the target (about 45 % of its width covered at
  the middle of the segment); the ground truth stays the full target box, as in benchmarks.
- ``out_of_view``: the target leaves the frame through the nearer side, stays out, returns.

Ground truth: the axis-aligned box of the drawn (rotated) ellipse, clipped to the image; None
when less than ``MIN_VISIBLE_FRACTION`` of that box lies inside the image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import cv2
import numpy as np

from ros_tracker.sources.base import Box, Frame, FrameSource, SourceError

ASSET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
BACKGROUND_ASSET = "background_coffee.jpg"
TARGET_ASSET = "target_cat_face.jpg"

SCALE_SPAN = 1.3  # scale swings over [1 / SCALE_SPAN, SCALE_SPAN] of the base size
MAX_ROTATION_DEG = 12.0
BRIGHTNESS_SPAN = 0.2
PAN_FRACTION = 0.08  # background pans by up to this fraction of the frame size each way
OCCLUDER_WIDTH = 0.45  # post width relative to the target box width
MIN_VISIBLE_FRACTION = 0.1
_EDGE_PAD = 2  # sprite pixels around the ellipse, so interpolation never reads the border


def load_asset(name: str) -> np.ndarray:
    """A shipped image as BGR uint8 (assets are loaded with cv2 only)."""
    path = os.path.join(ASSET_DIR, name)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"synthetic scene asset missing or unreadable: {path}")
    return image


@dataclass(frozen=True)
class TargetPose:
    """Where and how the target is drawn in one frame."""

    cx: float
    cy: float
    semi_axes: Tuple[float, float]  # ellipse semi-axes in frame pixels, before rotation
    angle_deg: float
    gain: float  # brightness multiplier
    occluder_progress: Optional[float]  # 0..1 through the occlusion sweep, None outside it

    @property
    def box(self) -> Box:
        """Axis-aligned box of the rotated ellipse (may extend past the image)."""
        a, b = self.semi_axes
        theta = math.radians(self.angle_deg)
        half_w = math.hypot(a * math.cos(theta), b * math.sin(theta))
        half_h = math.hypot(a * math.sin(theta), b * math.cos(theta))
        return (self.cx - half_w, self.cy - half_h, 2.0 * half_w, 2.0 * half_h)


class _Wave:
    """amplitude * sin(2 pi t / period + phase), with period and phase drawn from ``rng``."""

    def __init__(self, rng: np.random.Generator, amplitude: float, periods: Tuple[float, float]):
        self.amplitude = amplitude
        self.omega = 2.0 * math.pi / rng.uniform(*periods)
        self.phase = rng.uniform(0.0, 2.0 * math.pi)

    def __call__(self, t: float) -> float:
        return self.amplitude * math.sin(self.omega * t + self.phase)


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _elliptical_sprite(image: np.ndarray) -> np.ndarray:
    """BGRA sprite: ``image`` padded by _EDGE_PAD, alpha an anti-aliased inscribed ellipse."""
    height, width = image.shape[:2]
    padded = cv2.copyMakeBorder(image, *([_EDGE_PAD] * 4), cv2.BORDER_REPLICATE)
    a, b = width / 2.0, height / 2.0
    u = (np.arange(padded.shape[1], dtype=np.float32) + 0.5 - _EDGE_PAD - a) / a
    v = (np.arange(padded.shape[0], dtype=np.float32) + 0.5 - _EDGE_PAD - b) / b
    radius = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    # (1 - radius) * mean semi-axis approximates the signed distance to the rim in pixels.
    alpha = np.clip(0.5 + (1.0 - radius) * math.sqrt(a * b), 0.0, 1.0)
    return np.dstack([padded, (alpha * 255.0 + 0.5).astype(np.uint8)])


class SyntheticScene(FrameSource):
    """Deterministic synthetic sequence with ground truth for every frame (see module doc)."""

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        frames: int = 300,
        seed: int = 0,
        fps: float = 30.0,
        target_size: float = 0.25,
        rotation: bool = True,
        brightness: bool = True,
        occlusion: bool = False,
        out_of_view: bool = False,
    ) -> None:
        if width < 32 or height < 32:
            raise SourceError(f"synthetic frame size must be at least 32x32, got {width}x{height}")
        if frames < 1:
            raise SourceError(f"synthetic scene needs at least 1 frame, got {frames}")
        if not fps > 0.0:
            raise SourceError(f"fps must be positive, got {fps}")
        if not 0.0 < target_size <= 0.6:
            raise SourceError(
                f"target_size is a fraction of the frame height in (0, 0.6], got {target_size}"
            )
        self._size = (int(width), int(height))
        self._frames = int(frames)
        self._fps = float(fps)
        self.seed = int(seed)
        self.occlusion = bool(occlusion)
        self.out_of_view = bool(out_of_view)
        rng = np.random.default_rng(self.seed)
        self._build_images(target_size)
        self._build_motion(rng, rotation, brightness)

    # ----------------------------------------------------------------- set-up
    def _build_images(self, target_size: float) -> None:
        width, height = self._size
        target = load_asset(TARGET_ASSET)
        largest_h = target_size * height * SCALE_SPAN
        largest_w = largest_h * target.shape[1] / target.shape[0]
        self._largest_axes = (largest_w / 2.0, largest_h / 2.0)
        drawn = (max(2, round(largest_w)), max(2, round(largest_h)))
        self._sprite = _elliptical_sprite(cv2.resize(target, drawn, interpolation=cv2.INTER_AREA))
        # Semi-axes actually drawn at sprite scale 1 (rounded sprite size).
        self._sprite_axes = (drawn[0] / 2.0, drawn[1] / 2.0)

        background = load_asset(BACKGROUND_ASSET)
        need_w = width * (1.0 + 2.0 * PAN_FRACTION) + 4.0
        need_h = height * (1.0 + 2.0 * PAN_FRACTION) + 4.0
        cover = max(need_w / background.shape[1], need_h / background.shape[0])
        size = (math.ceil(background.shape[1] * cover), math.ceil(background.shape[0] * cover))
        self._background = cv2.resize(background, size, interpolation=cv2.INTER_AREA)

        post_w = math.ceil(2.0 * max(self._largest_axes) * OCCLUDER_WIDTH) + 2
        post_h = math.ceil(2.0 * max(self._largest_axes) * 1.4) + 2
        # The post is cut from the bare wood at the photo's right edge, darkened.
        wood = background[:, -background.shape[1] // 6 :]
        self._post_texture = (cv2.resize(wood, (post_w, post_h)) * 0.7).astype(np.uint8)

    def _build_motion(self, rng: np.random.Generator, rotation: bool, brightness: bool) -> None:
        width, height = self._size
        reach = max(self._sprite_axes)  # half extent of the target at any angle and scale
        margin = 0.02 * min(width, height)
        amp_x, amp_y = width / 2.0 - reach - margin, height / 2.0 - reach - margin
        if amp_x <= 0.0 or amp_y <= 0.0:
            raise SourceError(f"target_size too large for a {width}x{height} frame")
        self._x_waves = (_Wave(rng, 0.7 * amp_x, (7.0, 12.0)), _Wave(rng, 0.3 * amp_x, (2.5, 4.0)))
        self._y_waves = (_Wave(rng, 0.7 * amp_y, (5.0, 9.0)), _Wave(rng, 0.3 * amp_y, (2.0, 3.5)))
        self._log_scale = _Wave(rng, math.log(SCALE_SPAN), (6.0, 10.0))
        self._rotation = _Wave(rng, MAX_ROTATION_DEG if rotation else 0.0, (4.0, 7.0))
        self._gain = _Wave(rng, BRIGHTNESS_SPAN if brightness else 0.0, (5.0, 9.0))
        bg_h, bg_w = self._background.shape[:2]
        self._pan = (
            _Wave(rng, (bg_w - width) / 2.0 - 1.0, (15.0, 25.0)),
            _Wave(rng, (bg_h - height) / 2.0 - 1.0, (12.0, 20.0)),
        )
        duration = self._frames / self._fps
        self._occlusion_span = (0.25 * duration, min(2.0, 0.15 * duration))
        ramp, hold = min(1.0, 0.08 * duration), min(1.0, 0.06 * duration)
        self._exit_span = (0.55 * duration, ramp, hold)
        exit_mid = 0.55 * duration + ramp + hold / 2.0
        self._exit_right = self._base_centre(exit_mid)[0] >= width / 2.0

    # ------------------------------------------------------------------ poses
    def _base_centre(self, t: float) -> Tuple[float, float]:
        width, height = self._size
        return (
            width / 2.0 + sum(wave(t) for wave in self._x_waves),
            height / 2.0 + sum(wave(t) for wave in self._y_waves),
        )

    def _exit_offset(self, t: float, cx: float) -> float:
        """Horizontal shift that carries the target out of the frame and back."""
        start, ramp, hold = self._exit_span
        if not self.out_of_view or not start <= t <= start + 2.0 * ramp + hold:
            return 0.0
        out = _smoothstep((t - start) / ramp) * _smoothstep((start + 2.0 * ramp + hold - t) / ramp)
        reach = max(self._sprite_axes) + 1.0
        if self._exit_right:
            return out * (self._size[0] - cx + reach)
        return -out * (cx + reach)

    def pose(self, index: int) -> TargetPose:
        """The target's pose in frame ``index`` (no rendering)."""
        t = index / self._fps
        cx, cy = self._base_centre(t)
        cx += self._exit_offset(t, cx)
        scale = math.exp(self._log_scale(t)) / SCALE_SPAN  # relative to the sprite, <= 1
        progress = None
        start, length = self._occlusion_span
        if self.occlusion and start <= t <= start + length:
            progress = (t - start) / length
        axes = (self._sprite_axes[0] * scale, self._sprite_axes[1] * scale)
        return TargetPose(cx, cy, axes, self._rotation(t), 1.0 + self._gain(t), progress)

    def ground_truth(self, index: int) -> Optional[Box]:
        """The target box in frame ``index`` clipped to the image, or None when out of view."""
        return self._visible_box(self.pose(index).box)

    def _visible_box(self, box: Box) -> Optional[Box]:
        width, height = self._size
        x, y, w, h = box
        x0, y0 = max(x, 0.0), max(y, 0.0)
        x1, y1 = min(x + w, float(width)), min(y + h, float(height))
        if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < MIN_VISIBLE_FRACTION * w * h:
            return None
        return (x0, y0, x1 - x0, y1 - y0)

    # -------------------------------------------------------------- rendering
    def render(self, index: int) -> Frame:
        """Frame ``index`` (0 <= index < frames) with its ground truth."""
        if not 0 <= index < self._frames:
            raise IndexError(f"frame {index} outside 0..{self._frames - 1}")
        image = self.background(index)
        pose = self.pose(index)
        box = pose.box
        self._paste_target(image, pose, box)
        if pose.occluder_progress is not None:
            self._draw_post(image, pose.occluder_progress, box)
        return Frame(image, self._visible_box(box))

    def background(self, index: int) -> np.ndarray:
        """Frame ``index`` without target or occluder (the panned background alone)."""
        width, height = self._size
        t = index / self._fps
        bg_h, bg_w = self._background.shape[:2]
        left = round((bg_w - width) / 2.0 + self._pan[0](t))
        top = round((bg_h - height) / 2.0 + self._pan[1](t))
        return self._background[top : top + height, left : left + width].copy()

    def _paste_target(self, image: np.ndarray, pose: TargetPose, box: Box) -> None:
        height, width = image.shape[:2]
        x0, y0 = max(0, math.floor(box[0]) - 1), max(0, math.floor(box[1]) - 1)
        x1 = min(width, math.ceil(box[0] + box[2]) + 1)
        y1 = min(height, math.ceil(box[1] + box[3]) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        scale = pose.semi_axes[0] / self._sprite_axes[0]
        theta = math.radians(pose.angle_deg)
        linear = scale * np.array(
            [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
        )
        sprite_centre = np.array([self._sprite.shape[1], self._sprite.shape[0]]) / 2.0
        # Pixel centres sit at index + 0.5 in both images; warpAffine works on indices.
        shift = linear @ (0.5 - sprite_centre) + np.array([pose.cx, pose.cy]) - 0.5
        matrix = np.hstack([linear, (shift - [x0, y0])[:, None]])
        warped = cv2.warpAffine(
            self._sprite,
            matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        alpha = warped[:, :, 3].astype(np.float32) * (1.0 / 255.0)
        colour = cv2.convertScaleAbs(warped[:, :, :3], alpha=pose.gain)  # saturating gain
        region = image[y0:y1, x0:x1]
        region[...] = cv2.blendLinear(colour, region, alpha, 1.0 - alpha)

    def _draw_post(self, image: np.ndarray, progress: float, box: Box) -> None:
        """A wooden post sliding left to right across the target box."""
        height, width = image.shape[:2]
        post_w = max(2, round(box[2] * OCCLUDER_WIDTH))
        post_h = max(2, round(box[3] * 1.4))
        centre_x = box[0] + box[2] / 2.0 + (2.0 * progress - 1.0) * (box[2] + post_w) / 2.0
        left = round(centre_x - post_w / 2.0)
        top = round(box[1] + box[3] / 2.0 - post_h / 2.0)
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(width, left + post_w), min(height, top + post_h)
        if x1 <= x0 or y1 <= y0:
            return
        image[y0:y1, x0:x1] = self._post_texture[y0 - top : y1 - top, x0 - left : x1 - left]
        cv2.rectangle(image, (left, top), (left + post_w - 1, top + post_h - 1), (20, 25, 30), 2)

    # ------------------------------------------------------------ FrameSource
    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> Tuple[int, int]:
        return self._size

    @property
    def num_frames(self) -> Optional[int]:
        return self._frames

    @property
    def description(self) -> str:
        flags = [name for name in ("occlusion", "out_of_view") if getattr(self, name)]
        extra = f", {'+'.join(flags)}" if flags else ""
        width, height = self._size
        return f"synthetic scene {width}x{height}, {self._frames} frames, seed {self.seed}{extra}"

    def __iter__(self) -> Iterator[Frame]:
        for index in range(self._frames):
            yield self.render(index)
