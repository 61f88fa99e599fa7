"""``ros-tracker run`` and the video_source node, as users start them."""

from __future__ import annotations

import re
import subprocess

import cv2
import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from ros_harness import (
    Driver,
    NodeProcess,
    fresh_domain_id,
    parameter_args,
    ros_environment,
    with_python_path,
)
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2D


def test_run_records_an_annotated_video_and_scores_it(tmp_path):
    video = tmp_path / "run.mp4"
    env = ros_environment(fresh_domain_id())
    result = subprocess.run(
        [
            NodeProcess.executable_path("ros-tracker"),
            "run",
            "--frames",
            "40",
            "--record",
            str(video),
            "--engine-cache-dir",
            str(tmp_path / "cache"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "frames published 40" in result.stdout
    match = re.search(r"success AUC (\d\.\d+), precision@20px (\d\.\d+)", result.stdout)
    assert match, result.stdout
    assert 0.0 <= float(match.group(1)) <= 1.0
    written = int(re.search(r"annotated video: .* \((\d+) frames\)", result.stdout).group(1))
    assert written > 0
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened()
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 640, 3)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == written


def test_run_without_ground_truth_or_box_explains(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    image = cv2.imread(str(_any_asset()))
    for index in range(3):
        cv2.imwrite(str(folder / f"{index:03d}.png"), image)
    result = subprocess.run(
        [NodeProcess.executable_path("ros-tracker"), "run", "--source", str(folder)]
        + ["--frames", "3", "--engine-cache-dir", str(tmp_path / "cache")],
        env=ros_environment(fresh_domain_id()),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1
    assert "no ground truth; give --box" in result.stderr


def _any_asset():
    from pathlib import Path

    import ros_tracker.sources

    assets = Path(ros_tracker.sources.__file__).parent / "assets"
    return sorted(assets.glob("*.jpg"))[0]


CALIBRATION = """image_width: 160
image_height: 120
camera_name: test_camera
camera_matrix: {rows: 3, cols: 3, data: [101.5, 0.0, 80.2, 0.0, 100.9, 59.7, 0.0, 0.0, 1.0]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [-0.21, 0.04, 0.001, -0.0005, 0.0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [95.0, 0, 80.0, 0, 0, 95.0, 60.0, 0, 0, 0, 1, 0]}
"""


def test_video_source_publishes_images_camera_info_and_ground_truth(tmp_path):
    calibration = tmp_path / "camera.yaml"
    calibration.write_text(CALIBRATION)
    domain = fresh_domain_id()
    params = {
        "source": "synthetic",
        "width": 160,
        "height": 120,
        "frames": 20,
        "rate": 20.0,
        "camera_info_file": str(calibration),
    }
    process = NodeProcess("video_source_node", parameter_args(params), ros_environment(domain))
    driver = Driver(domain)
    try:
        images = driver.collect(Image, "/image")  # reliable, as camera drivers publish
        infos = driver.collect(CameraInfo, "/camera_info")
        truth = driver.collect(Detection2D, "/video_source/ground_truth")
        assert images.wait_for(lambda msgs: len(msgs) >= 5, timeout=60.0), process.output
        assert truth.wait_for(lambda msgs: len(msgs) >= 5, timeout=10.0)
        assert infos.wait_for(lambda msgs: len(msgs) >= 5, timeout=10.0)
        image = images.snapshot()[-1]
        assert (image.width, image.height, image.encoding) == (160, 120, "bgr8")
        assert image.header.frame_id == "camera"
        publishers = driver.node.get_publishers_info_by_topic("/image")
        assert [p.qos_profile.reliability for p in publishers] == [ReliabilityPolicy.RELIABLE]
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images.snapshot()}
        truth_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in truth.snapshot()}
        info_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in infos.snapshot()}
        assert stamps & truth_stamps, "ground truth does not share the images' headers"
        assert stamps & info_stamps, "camera_info does not share the images' headers"
        info = infos.snapshot()[-1]
        assert (info.width, info.height, info.distortion_model) == (160, 120, "plumb_bob")
        assert list(info.k) == [101.5, 0.0, 80.2, 0.0, 100.9, 59.7, 0.0, 0.0, 1.0]
        assert list(info.d) == [-0.21, 0.04, 0.001, -0.0005, 0.0]
        assert info.p[0] == 95.0
    finally:
        driver.close()
        assert process.stop() == 0, process.output


@pytest.mark.parametrize(
    "params, rule",
    [
        ({"encoding": "yuv9000"}, "encoding must be one of bgr8, rgb8, mono8, got 'yuv9000'"),
        ({"rate": -5.0}, "rate must be in [0, 1000]"),
        ({"rate": 30}, "rate must be a floating-point number"),
        ({"image_qos": "fast"}, "image_qos must be one of reliable, sensor_data"),
        ({"camera_info_file": "/nonexistent/camera.yaml"}, "cannot read camera_info_file"),
    ],
)
def test_video_source_refuses_bad_parameters_in_one_line(params, rule):
    process = NodeProcess(
        "video_source_node", parameter_args(params), ros_environment(fresh_domain_id())
    )
    assert process.process.wait(timeout=60) == 1
    process.stop()
    lines = [line for line in process.lines if line.strip()]
    assert len(lines) == 1 and rule in lines[0], process.output


def test_video_source_refuses_a_source_without_a_frame_rate(tmp_path):
    """rate 0 (the default) means the source's own rate; a source that reports none is one
    clear line. Every shipped source falls back to a default rate (FFmpeg itself reports 25
    fps for a video whose header says 0), so a sitecustomize makes the image folder report
    0 fps, as a source that knows no rate would."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(2):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((24, 32, 3), 80 * index, np.uint8))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "from ros_tracker.sources.files import ImageFolderSource\n"
        "\n"
        "ImageFolderSource.fps = property(lambda self: 0.0)\n"
    )
    env = with_python_path(ros_environment(fresh_domain_id()), site)
    params = {"source": str(folder), "rate": 0.0}
    process = NodeProcess("video_source_node", parameter_args(params), env)
    try:
        assert process.process.wait(timeout=60) == 1, process.output
    finally:
        process.stop()
    lines = [line for line in process.lines if line.strip()]
    assert len(lines) == 1 and "Traceback" not in process.output, process.output
    assert "[FATAL]" in lines[0], lines[0]
    assert (
        f"image folder {folder} (2 images, 32x24) reports no frame rate: set the rate parameter"
        in lines[0]
    ), lines[0]


def test_video_source_with_a_missing_file_fails_clearly(tmp_path):
    missing = tmp_path / "nothing.mp4"
    process = NodeProcess(
        "video_source_node",
        parameter_args({"source": str(missing)}),
        ros_environment(fresh_domain_id()),
    )
    assert process.process.wait(timeout=60) == 1
    process.stop()
    assert "nothing.mp4" in process.output
