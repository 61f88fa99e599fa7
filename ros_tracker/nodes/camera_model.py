"""Pixels to directions: the camera model of a sensor_msgs/CameraInfo, inverted.

``CameraModel.ray(u, v)`` is the unit vector from the optical centre towards pixel (u, v) of
the raw (distorted) image, in the camera's optical frame (x right, y down, z forward), as the
``~/bearing`` topic publishes it. Models (``CameraInfo.distortion_model``):

* ``plumb_bob`` (k1, k2, p1, p2, k3) and ``rational_polynomial`` (k1, k2, p1, p2, k3, k4, k5,
  k6), OpenCV's pinhole model: inverted with Newton's method on the forward model;
* ``equidistant`` (k1, k2, k3, k4), OpenCV's fisheye model: theta_d = theta (1 + k1 theta^2 +
  k2 theta^4 + k3 theta^6 + k4 theta^8), solved for theta, so rays beyond 90 degrees work too;
* no coefficients (or all zero): an ideal pinhole.

Pixel coordinates follow CameraInfo (OpenCV): the centre of the top-left pixel is (0, 0).
Boxes in this package put pixel i over [i, i + 1) (its centre at i + 0.5):
``ray_for_box_centre`` converts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, Tuple

import numpy as np

Vector = Tuple[float, float, float]
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
FISHEYE_MODELS = ("equidistant",)
NEWTON_STEPS = 50
TOLERANCE = 1e-12


class CameraModelError(ValueError):
    """A CameraInfo that cannot give bearings; the message says why."""


def _pinhole_distort(x: float, y: float, d: np.ndarray) -> Tuple[float, float]:
    k1, k2, p1, p2, k3, k4, k5, k6 = d
    r2 = x * x + y * y
    radial = (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def _pinhole_undistort(xd: float, yd: float, d: np.ndarray) -> Tuple[float, float]:
    """Newton's method on the forward model (numerical 2x2 Jacobian), from (xd, yd)."""
    x, y = xd, yd
    for _ in range(NEWTON_STEPS):
        fx, fy = _pinhole_distort(x, y, d)
        ex, ey = fx - xd, fy - yd
        if ex * ex + ey * ey < TOLERANCE * TOLERANCE:
            break
        h = 1e-7 * max(1.0, abs(x), abs(y))
        ax, ay = _pinhole_distort(x + h, y, d)
        bx, by = _pinhole_distort(x, y + h, d)
        j11, j21 = (ax - fx) / h, (ay - fy) / h
        j12, j22 = (bx - fx) / h, (by - fy) / h
        det = j11 * j22 - j12 * j21
        if abs(det) < 1e-15:
            raise CameraModelError("the distortion model cannot be inverted at this pixel")
        x -= (j22 * ex - j12 * ey) / det
        y -= (-j21 * ex + j11 * ey) / det
    return x, y


def _fisheye_theta(theta_d: float, k: np.ndarray) -> float:
    """theta with theta (1 + k1 theta^2 + ... + k4 theta^8) = theta_d (Newton's method)."""
    k1, k2, k3, k4 = k
    theta = theta_d
    for _ in range(NEWTON_STEPS):
        t2 = theta * theta
        poly = 1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
        slope = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
        error = theta * poly - theta_d
        if abs(error) < TOLERANCE:
            break
        if abs(slope) < 1e-15:
            raise CameraModelError("the fisheye model cannot be inverted at this pixel")
        theta -= error / slope
    return theta


@dataclass(frozen=True)
class CameraModel:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    skew: float
    model: str  # "pinhole" (plumb_bob, rational_polynomial, none) or "equidistant"
    coefficients: Tuple[float, ...]

    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        k = [float(v) for v in msg.k]
        fx, skew, cx, _, fy, cy = k[0], k[1], k[2], k[3], k[4], k[5]
        if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0.0 and fy > 0.0):
            raise CameraModelError(
                f"camera_info has no intrinsics (K = {k}): the camera is not calibrated"
            )
        if int(msg.binning_x) > 1 or int(msg.binning_y) > 1 or int(msg.roi.width) > 0:
            raise CameraModelError("camera_info with binning or a region of interest")
        name = str(msg.distortion_model)
        d = [float(v) for v in msg.d]
        if not all(math.isfinite(v) for v in d):
            raise CameraModelError(f"camera_info has non-finite distortion coefficients {d}")
        if name in FISHEYE_MODELS:
            if len(d) < 4:
                raise CameraModelError(f"equidistant needs 4 coefficients, got {len(d)}")
            return cls(
                int(msg.width), int(msg.height), fx, fy, cx, cy, skew, "equidistant", tuple(d[:4])
            )
        if name not in PINHOLE_MODELS and any(d):
            raise CameraModelError(
                f"distortion model {name!r} is not supported (plumb_bob, rational_polynomial, "
                "equidistant)"
            )
        padded = (d + [0.0] * 8)[:8]
        return cls(int(msg.width), int(msg.height), fx, fy, cx, cy, skew, "pinhole", tuple(padded))

    def ray(self, u: float, v: float) -> Vector:
        """Unit direction towards pixel (u, v) (OpenCV pixel coordinates)."""
        y = (v - self.cy) / self.fy
        x = (u - self.cx - self.skew * y) / self.fx
        coefficients = np.asarray(self.coefficients, dtype=np.float64)
        if self.model == "equidistant":
            theta_d = math.hypot(x, y)
            if theta_d == 0.0:
                return (0.0, 0.0, 1.0)
            theta = _fisheye_theta(theta_d, coefficients)
            s = math.sin(theta) / theta_d
            return (x * s, y * s, math.cos(theta))
        if any(coefficients):
            x, y = _pinhole_undistort(x, y, coefficients)
        norm = math.sqrt(x * x + y * y + 1.0)
        return (x / norm, y / norm, 1.0 / norm)

    def ray_for_box_centre(self, centre: Sequence[float]) -> Vector:
        """The ray towards a box centre given in this package's box convention."""
        return self.ray(float(centre[0]) - 0.5, float(centre[1]) - 0.5)
