"""CameraModel.ray against rays projected by OpenCV itself (an independent forward model)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from ros_tracker.nodes.camera_model import CameraModel, CameraModelError

K = np.array([[412.5, 0.0, 319.2], [0.0, 410.1, 243.7], [0.0, 0.0, 1.0]])


def camera_info(model: str, d, k=K, width=640, height=480) -> CameraInfo:
    msg = CameraInfo()
    msg.width, msg.height = width, height
    msg.distortion_model = model
    msg.d = [float(v) for v in d]
    msg.k = [float(v) for v in np.asarray(k).reshape(-1)]
    return msg


def unit_rays(max_angle_deg: float, count: int = 40) -> np.ndarray:
    """Directions spread over a cone of half-angle ``max_angle_deg`` around the optical axis."""
    rng = np.random.default_rng(7)
    theta = np.radians(rng.uniform(0.0, max_angle_deg, count))
    phi = rng.uniform(-math.pi, math.pi, count)
    return np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1
    )


def project(rays: np.ndarray, model: str, d) -> np.ndarray:
    """OpenCV's projection of unit rays to pixels of the distorted image."""
    zero = np.zeros(3)
    if model == "equidistant":
        points = cv2.fisheye.projectPoints(
            rays.reshape(-1, 1, 3), zero, zero, K, np.asarray(d, dtype=np.float64)
        )[0]
    else:
        points = cv2.projectPoints(rays, zero, zero, K, np.asarray(d, dtype=np.float64))[0]
    return points.reshape(-1, 2)


@pytest.mark.parametrize(
    "model, d, max_angle",
    [
        ("plumb_bob", [0.0, 0.0, 0.0, 0.0, 0.0], 35.0),
        ("plumb_bob", [-0.28, 0.09, 0.0012, -0.0008, -0.012], 35.0),  # barrel, typical webcam
        ("plumb_bob", [0.12, -0.05, 0.002, 0.001, 0.01], 35.0),  # pincushion
        ("rational_polynomial", [-0.3, 0.11, 0.001, 0.0005, -0.02, 0.05, 0.01, 0.002], 35.0),
        ("equidistant", [-0.013, 0.021, -0.017, 0.004], 80.0),  # a 160-degree fisheye
    ],
)
def test_rays_match_opencv_projection(model, d, max_angle):
    camera = CameraModel.from_camera_info(camera_info(model, d))
    rays = unit_rays(max_angle)
    pixels = project(rays, model, d)
    for ray, (u, v) in zip(rays, pixels):
        found = np.array(camera.ray(u, v))
        assert abs(np.linalg.norm(found) - 1.0) < 1e-9
        angle = math.degrees(math.acos(min(1.0, float(found @ ray))))
        assert angle < 1e-4, (model, ray, found, angle)


def test_centre_pixel_is_the_optical_axis_and_box_convention_is_half_a_pixel():
    camera = CameraModel.from_camera_info(camera_info("plumb_bob", [-0.2, 0.05, 0, 0, 0]))
    assert camera.ray(319.2, 243.7) == pytest.approx((0.0, 0.0, 1.0))
    # A box centred on pixel (319.2, 243.7) in OpenCV terms has its centre at +0.5.
    assert camera.ray_for_box_centre((319.7, 244.2)) == pytest.approx((0.0, 0.0, 1.0))
    right = camera.ray(500.0, 243.7)
    assert right[0] > 0 and abs(right[1]) < 1e-12  # x right, y down, z forward


def test_no_distortion_model_is_an_ideal_pinhole():
    camera = CameraModel.from_camera_info(camera_info("", []))
    x, y, z = camera.ray(319.2 + 412.5, 243.7)  # one focal length to the right: 45 degrees
    assert math.degrees(math.atan2(x, z)) == pytest.approx(45.0)


@pytest.mark.parametrize(
    "msg, reason",
    [
        (camera_info("plumb_bob", [0] * 5, k=np.zeros((3, 3))), "not calibrated"),
        (camera_info("fov", [0.9]), "not supported"),
        (camera_info("equidistant", [0.1, 0.0]), "needs 4 coefficients"),
        (camera_info("plumb_bob", [float("nan")] * 5), "non-finite"),
    ],
)
def test_unusable_camera_info_is_refused_with_the_reason(msg, reason):
    with pytest.raises(CameraModelError, match=reason):
        CameraModel.from_camera_info(msg)
