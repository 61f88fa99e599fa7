"""Frame sources: synthetic scene ground truth, video files, image folders, spec resolution."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ros_tracker.sources import (
    CameraSource,
    FrameSource,
    ImageFolderSource,
    SourceError,
    SyntheticScene,
    VideoFileSource,
    open_source,
)
from ros_tracker.sources.synthetic import MIN_VISIBLE_FRACTION

SMALL = {"width": 160, "height": 120, "frames": 60, "fps": 10.0}


def iou(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    h = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def changed_pixels(scene: SyntheticScene, index: int) -> np.ndarray:
    image, _ = scene.render(index)
    return np.abs(image.astype(int) - scene.background(index).astype(int)).max(axis=2) > 0


def bounding_box(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())


# ------------------------------------------------------------------ synthetic scene
def test_synthetic_scene_is_deterministic_and_seed_dependent():
    first, again = SyntheticScene(seed=3, **SMALL), SyntheticScene(seed=3, **SMALL)
    other = SyntheticScene(seed=4, **SMALL)
    for (image_a, box_a), (image_b, box_b) in zip(first, again):
        np.testing.assert_array_equal(image_a, image_b)
        assert box_a == box_b
    assert [first.ground_truth(i) for i in range(60)] != [other.ground_truth(i) for i in range(60)]


def test_synthetic_frames_have_the_declared_format():
    scene = SyntheticScene()
    assert scene.size == (640, 480) and scene.num_frames == 300 and scene.fps == 30.0
    frames = list(SyntheticScene(**SMALL))
    assert len(frames) == 60
    image, box = frames[7]
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
    assert len(box) == 4
    np.testing.assert_array_equal(SyntheticScene(**SMALL).render(7).image, image)


def test_target_moves_scales_and_stays_inside_the_image():
    scene = SyntheticScene(seed=1)
    boxes = np.array([scene.ground_truth(i) for i in range(scene.num_frames)])
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= 640).all() and (boxes[:, 1] + boxes[:, 3] <= 480).all()
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert np.ptp(centres[:, 0]) > 100 and np.ptp(centres[:, 1]) > 60
    assert boxes[:, 3].max() / boxes[:, 3].min() > 1.3
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 15, "the path must be smooth from frame to frame"


@pytest.mark.parametrize("seed", [0, 5])
def test_ground_truth_box_is_where_the_target_is_drawn(seed):
    scene = SyntheticScene(seed=seed)
    for index in (0, 37, 150, 299):
        changed = changed_pixels(scene, index)
        box = scene.ground_truth(index)
        drawn = bounding_box(changed)
        assert iou(drawn, box) > 0.93, (index, drawn, box)
        # Nothing changes outside the box (1 px of anti-aliasing allowed)...
        x0, y0 = int(np.floor(box[0])) - 1, int(np.floor(box[1])) - 1
        x1, y1 = int(np.ceil(box[0] + box[2])) + 1, int(np.ceil(box[1] + box[3])) + 1
        outside = changed.copy()
        outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
        assert not outside.any()
        # ...and most of the box is the (elliptical) target: pi / 4 of it when unrotated.
        inside = changed[int(box[1]) : int(box[1] + box[3]), int(box[0]) : int(box[0] + box[2])]
        assert inside.mean() > 0.7


def test_background_pans_between_frames():
    scene = SyntheticScene(seed=2)
    first, later = scene.background(0), scene.background(90)
    assert first.shape == later.shape == (480, 640, 3)
    assert np.abs(first.astype(int) - later.astype(int)).mean() > 5


def test_occlusion_covers_part_of_the_target_and_keeps_the_full_box():
    clean = SyntheticScene(seed=0, **SMALL)
    occluded = SyntheticScene(seed=0, occlusion=True, **SMALL)
    indices = [i for i in range(60) if occluded.pose(i).occluder_progress is not None]
    assert indices, "the occlusion segment must exist"
    middle = indices[len(indices) // 2]
    box = occluded.ground_truth(middle)
    assert box == clean.ground_truth(middle)
    x, y, w, h = (int(v) for v in box)
    difference = np.abs(
        occluded.render(middle).image.astype(int) - clean.render(middle).image.astype(int)
    ).max(axis=2)[y : y + h, x : x + w]
    covered = (difference > 0).mean()
    assert 0.2 < covered < 0.8, covered
    before = indices[0] - 1
    np.testing.assert_array_equal(occluded.render(before).image, clean.render(before).image)


def test_out_of_view_segment_has_no_box_and_no_target_drawn():
    scene = SyntheticScene(seed=0, out_of_view=True)
    boxes = [scene.ground_truth(i) for i in range(scene.num_frames)]
    absent = [i for i, box in enumerate(boxes) if box is None]
    assert len(absent) >= 10
    assert absent == list(range(absent[0], absent[-1] + 1)), "one contiguous segment"
    assert boxes[0] is not None and boxes[-1] is not None
    middle = absent[len(absent) // 2]
    image, box = scene.render(middle)
    assert box is None
    np.testing.assert_array_equal(image, scene.background(middle))
    # At the ends of the segment at most a sliver (< MIN_VISIBLE_FRACTION of the box) shows.
    for index, neighbour in ((absent[0], absent[0] - 1), (absent[-1], absent[-1] + 1)):
        box_area = boxes[neighbour][2] * boxes[neighbour][3]
        assert changed_pixels(scene, index).sum() < MIN_VISIBLE_FRACTION * box_area
    entering = scene.ground_truth(absent[-1] + 1)
    assert entering[0] == 0.0 or entering[0] + entering[2] == 640.0, "clipped at the border"


def test_synthetic_argument_errors():
    with pytest.raises(SourceError, match="at least 1 frame"):
        SyntheticScene(frames=0)
    with pytest.raises(SourceError, match="at least 32x32"):
        SyntheticScene(width=16, height=16)
    with pytest.raises(SourceError, match="target_size"):
        SyntheticScene(target_size=0.9)
    with pytest.raises(IndexError):
        SyntheticScene(**SMALL).render(60)


def test_synthetic_scene_needs_only_cv2_at_run_time():
    code = (
        "import sys; sys.modules['skimage'] = None; sys.modules['PIL'] = None\n"
        "from ros_tracker.sources import SyntheticScene\n"
        "print(SyntheticScene(frames=2).render(1).box is not None)"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


# ----------------------------------------------------------------------- video files
def write_video(path: str, frames: int = 12, fps: float = 15.0) -> None:
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for k in range(frames):
        writer.write(np.full((48, 64, 3), 20 * k, np.uint8))
    writer.release()


def test_video_file_round_trip(tmp_path):
    path = str(tmp_path / "clip.avi")
    write_video(path)
    with open_source(path) as source:
        assert isinstance(source, VideoFileSource)
        assert source.size == (64, 48) and source.fps == pytest.approx(15.0)
        assert source.num_frames == 12
        frames = list(source)
        assert len(frames) == 12
        for k, (image, box) in enumerate(frames):
            assert box is None and image.shape == (48, 64, 3) and image.dtype == np.uint8
            assert abs(float(image.mean()) - 20 * k) < 3
        assert len(list(source)) == 12, "a second pass restarts from the first frame"
    assert VideoFileSource(path, fps=5).fps == 5.0


def test_video_file_errors(tmp_path):
    with pytest.raises(SourceError, match="video file not found"):
        VideoFileSource(str(tmp_path / "missing.avi"))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(SourceError, match="video file"):
        open_source(str(junk))


# --------------------------------------------------------------------- image folders
def test_image_folder_in_natural_order(tmp_path):
    for number in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"frame{number}.png"), np.full((30, 40, 3), number, np.uint8))
    cv2.imwrite(str(tmp_path / "frame11.png"), np.full((30, 40), 11, np.uint8))  # grey
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path), fps=12.5)
    assert isinstance(source, ImageFolderSource)
    assert source.size == (40, 30) and source.fps == 12.5 and source.num_frames == 4
    frames = list(source)
    assert [int(image[0, 0, 0]) for image, _ in frames] == [1, 2, 10, 11]
    assert all(box is None and image.shape == (30, 40, 3) for image, box in frames)


def test_image_folder_errors(tmp_path):
    with pytest.raises(SourceError, match="no image files"):
        ImageFolderSource(str(tmp_path))
    with pytest.raises(SourceError, match="image folder not found"):
        ImageFolderSource(str(tmp_path / "absent"))
    (tmp_path / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SourceError, match=r"cannot read image file .*a\.png"):
        ImageFolderSource(str(tmp_path))


def test_image_folder_reports_bad_images_when_reached(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((30, 40, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "2.png"), np.zeros((20, 40, 3), np.uint8))
    (tmp_path / "3.png").write_bytes(b"garbage")
    frames = iter(ImageFolderSource(str(tmp_path)))
    next(frames)
    with pytest.raises(
        SourceError, match=r"2\.png is 40x20, but the folder's first image is 40x30"
    ):
        next(frames)


# ------------------------------------------------------------------ spec resolution
def test_open_source_synthetic_with_options():
    source = open_source(" Synthetic ", width=200, height=150, frames=5, seed=9)
    assert isinstance(source, SyntheticScene) and isinstance(source, FrameSource)
    assert source.size == (200, 150) and source.num_frames == 5 and source.seed == 9
    assert "synthetic scene 200x150" in source.description


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ("", "empty source spec"),
        ("camera:", "camera:N"),
        ("camera:-1", "camera:N"),
        ("camera:front", "camera:N"),
        ("/nonexistent/clip.mp4", "is not an existing file or folder"),
    ],
)
def test_open_source_rejects_bad_specs(spec, pattern):
    with pytest.raises(SourceError, match=pattern):
        open_source(spec)


def test_open_source_rejects_unknown_options(tmp_path):
    with pytest.raises(SourceError, match=r"does not accept option\(s\) colour; accepted: width"):
        open_source("synthetic", colour="red")
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SourceError, match="accepted: fps"):
        open_source(str(tmp_path), frames=3)


def test_missing_camera_gives_a_clear_error():
    index = next(i for i in range(90, 200) if not os.path.exists(f"/dev/video{i}"))
    with pytest.raises(SourceError, match=f"camera {index}"):
        open_source(f"camera:{index}")
    with pytest.raises(SourceError, match="camera index must be >= 0"):
        CameraSource(-2)
