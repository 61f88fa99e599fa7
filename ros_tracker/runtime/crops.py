"""Square context crops around a box, and their normalisation into network inputs.

All four trackers look at a square region centred on the target whose side is
``sqrt(w * h) * factor`` (STARK / OSTrack convention; HCAT's "twice / four times the side
length" is the same rule), resized to the network's input size. Here the crop and the resize
are one ``cv2.warpAffine`` with a sub-pixel centre, so no intermediate padded copy of the
image is ever built. Where the region leaves the image it is filled with the image's mean
colour, as the Siamese trackers do.

Coordinate convention: a pixel with index ``i`` covers the continuous interval ``[i, i + 1)``,
so a box ``(x, y, w, h)`` spans ``[x, x + w) x [y, y + h)`` and its centre is
``(x + w / 2, y + h / 2)``. Crop-normalised coordinates run from 0 to 1 across the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[float, float, float, float]


@dataclass(frozen=True)
class CropTransform:
    """Where a crop came from: its top-left corner and side in image pixels.

    Maps crop-normalised coordinates (0..1 across the crop) back to image pixels and back.
    """

    x0: float
    y0: float
    side: float  # side of the square region in image pixels
    output_size: int  # side of the resized crop in pixels

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.output_size / self.side

    def to_image(self, u: float, v: float) -> Tuple[float, float]:
        """Crop-normalised point -> image pixels."""
        return self.x0 + u * self.side, self.y0 + v * self.side

    def to_crop(self, x: float, y: float) -> Tuple[float, float]:
        """Image point -> crop-normalised coordinates."""
        return (x - self.x0) / self.side, (y - self.y0) / self.side

    def corners_to_crop(self, box: Sequence[float]) -> Tuple[float, float, float, float]:
        """Image (x, y, w, h) -> crop-normalised corners (x1, y1, x2, y2)."""
        x1, y1 = self.to_crop(box[0], box[1])
        x2, y2 = self.to_crop(box[0] + box[2], box[1] + box[3])
        return x1, y1, x2, y2

    def box_to_image(self, cx: float, cy: float, w: float, h: float) -> Box:
        """Crop-normalised (cx, cy, w, h) -> image (x, y, w, h)."""
        width = w * self.side
        height = h * self.side
        centre_x, centre_y = self.to_image(cx, cy)
        return centre_x - 0.5 * width, centre_y - 0.5 * height, width, height

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix from image pixel indices to crop pixel indices (cv2 convention).

        cv2 puts pixel centres at integer indices, i.e. index = continuous - 0.5 on both sides:
        u_idx + 0.5 = (x_idx + 0.5 - x0) * scale.
        """
        s = self.scale
        return np.array(
            [
                [s, 0.0, (0.5 - self.x0) * s - 0.5],
                [0.0, s, (0.5 - self.y0) * s - 0.5],
            ],
            dtype=np.float64,
        )

    def samples_inside(self, width: int, height: int) -> bool:
        """Whether every crop pixel samples the image without touching the border fill."""
        half_step = 0.5 / self.scale
        low_x = self.x0 + half_step - 0.5
        high_x = self.x0 + self.side - half_step - 0.5
        low_y = self.y0 + half_step - 0.5
        high_y = self.y0 + self.side - half_step - 0.5
        return low_x >= 0.0 and low_y >= 0.0 and high_x <= width - 1 and high_y <= height - 1


def context_region(box: Sequence[float], factor: float, output_size: int) -> CropTransform:
    """The square region of side sqrt(w*h)*factor centred on ``box`` (x, y, w, h)."""
    x, y, w, h = (float(v) for v in box)
    if not (w > 0.0 and h > 0.0):
        raise ValueError(f"box must have a positive width and height, got {tuple(box)!r}")
    if factor <= 0.0 or output_size <= 0:
        raise ValueError("factor and output_size must be positive")
    side = math.sqrt(w * h) * factor
    return CropTransform(
        x0=x + 0.5 * w - 0.5 * side,
        y0=y + 0.5 * h - 0.5 * side,
        side=side,
        output_size=int(output_size),
    )


def mean_colour(image: np.ndarray) -> Tuple[float, float, float]:
    """Per-channel mean of an HxWx3 image (the padding colour)."""
    b, g, r, _ = cv2.mean(image)
    return b, g, r


def crop_region(
    image: np.ndarray,
    region: CropTransform,
    out: Optional[np.ndarray] = None,
    border_value: Optional[Tuple[float, float, float]] = None,
) -> np.ndarray:
    """Cut ``region`` out of ``image`` and resize it, in one warpAffine.

    ``border_value`` defaults to the image mean colour; it is only computed when the region
    actually reaches past the image border.
    """
    height, width = image.shape[:2]
    if border_value is None:
        if region.samples_inside(width, height):
            border_value = (0.0, 0.0, 0.0)  # never sampled
        else:
            border_value = mean_colour(image)
    size = region.output_size
    if out is None:
        out = np.empty((size, size, 3), dtype=np.uint8)
    return cv2.warpAffine(
        image,
        region.matrix(),
        (size, size),
        dst=out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


def crop_around(
    image: np.ndarray,
    box: Sequence[float],
    factor: float,
    output_size: int,
    out: Optional[np.ndarray] = None,
    border_value: Optional[Tuple[float, float, float]] = None,
) -> Tuple[np.ndarray, CropTransform]:
    """Crop the square context region around ``box`` and resize it to ``output_size``.

    Returns the crop (output_size x output_size x 3, same dtype as the image) and the
    transform that maps crop-normalised coordinates back to image pixels.
    """
    region = context_region(box, factor, output_size)
    return crop_region(image, region, out=out, border_value=border_value), region


class Normalizer:
    """uint8 BGR crop -> (1, 3, S, S) float32 RGB, (x / 255 - mean) / std.

    The planes are split once and each is written straight into its slot of a preallocated
    output by one fused multiply-add (cv2.addWeighted), which is several times faster than
    the equivalent numpy broadcasting. The output array is overwritten by every call: copy
    it to keep it.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError("mean and std need three values each, std positive")
        self.size = int(size)
        # Per RGB channel: value = pixel * scale + offset.
        self._scale = [1.0 / (255.0 * float(s)) for s in std]
        self._offset = [-float(m) / float(s) for m, s in zip(mean, std)]
        self._planes = [np.empty((self.size, self.size), dtype=np.uint8) for _ in range(3)]
        self.output = np.empty((1, 3, self.size, self.size), dtype=np.float32)

    def __call__(self, crop_bgr: np.ndarray) -> np.ndarray:
        expected = (self.size, self.size, 3)
        if crop_bgr.shape != expected or crop_bgr.dtype != np.uint8:
            raise ValueError(
                f"crop must be uint8 of shape {expected}, got {crop_bgr.dtype} {crop_bgr.shape}"
            )
        blue, green, red = cv2.split(crop_bgr, self._planes)
        for channel, plane in enumerate((red, green, blue)):  # BGR -> RGB here
            cv2.addWeighted(
                plane,
                self._scale[channel],
                plane,
                0.0,
                self._offset[channel],
                dst=self.output[0, channel],
                dtype=cv2.CV_32F,
            )
        return self.output


CROP_STYLES = ("affine", "stark", "siamfc")


class CropPreprocessor:
    """Crop + normalise for one network input (template or search), with reused buffers.

    ``style`` (a card's ``crop_style``): "affine" is this module's crop; "stark" and
    "siamfc" are the authors' pixel rules (``runtime.reference_crops``), normalised the way
    their preprocessors do, ``((x / 255) - mean) / std`` in float32. Call :meth:`start` with
    the first frame of a target (the SiamFC rule pads with that frame's mean colour).
    """

    def __init__(
        self,
        output_size: int,
        factor: float,
        mean: Sequence[float],
        std: Sequence[float],
        style: str = "affine",
    ) -> None:
        if style not in CROP_STYLES:
            raise ValueError(f"crop style must be one of {', '.join(CROP_STYLES)}, got {style!r}")
        self.style = style
        self.factor = float(factor)
        self.output_size = int(output_size)
        self.crop = np.empty((self.output_size, self.output_size, 3), dtype=np.uint8)
        self.normalizer = Normalizer(self.output_size, mean, std)
        self._mean = np.asarray(mean, dtype=np.float32)
        self._std = np.asarray(std, dtype=np.float32)
        self._fill: Optional[np.ndarray] = None

    def start(self, image: np.ndarray) -> None:
        """A new target on ``image``: fix what the reference trackers take from its first frame."""
        if self.style == "siamfc":
            self._fill = image.reshape(-1, 3).mean(axis=0)

    def _reference(
        self, image: np.ndarray, box: Sequence[float]
    ) -> Tuple[np.ndarray, CropTransform]:
        from ros_tracker.runtime import reference_crops

        if self.style == "stark":
            crop, region = reference_crops.stark_crop(image, box, self.factor, self.output_size)
        else:
            crop, region = reference_crops.siamfc_crop(
                image, box, self.factor, self.output_size, fill=self._fill
            )
        rgb = crop[:, :, ::-1].astype(np.float32)
        normalised = (rgb / np.float32(255.0) - self._mean) / self._std
        self.normalizer.output[0] = normalised.transpose(2, 0, 1)
        return self.normalizer.output, region

    def region(self, box: Sequence[float]) -> CropTransform:
        """Where the crop around ``box`` comes from."""
        if self.style != "affine":
            from ros_tracker.runtime import reference_crops

            rule = getattr(reference_crops, f"{self.style}_region")
            return rule(box, self.factor, self.output_size)
        return context_region(box, self.factor, self.output_size)

    def __call__(self, image: np.ndarray, box: Sequence[float]) -> Tuple[np.ndarray, CropTransform]:
        """(1, 3, S, S) float32 input (a reused buffer) and the crop's transform."""
        if self.style != "affine":
            return self._reference(image, box)
        crop, region = crop_around(image, box, self.factor, self.output_size, out=self.crop)
        return self.normalizer(crop), region
