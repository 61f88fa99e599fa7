"""``ros-tracker track``: offline tracking of a video or a sequence folder (via subprocess)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from ros_tracker.cli import main as cli_main
from ros_tracker.sources.synthetic import SyntheticScene

from .cli_helpers import ros_tracker

FRAMES = 8
SIZE = (320, 240)


def _scene():
    return SyntheticScene(width=SIZE[0], height=SIZE[1], frames=FRAMES, seed=3)


@pytest.fixture
def short_video(tmp_path):
    scene = _scene()
    path = str(tmp_path / "input.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    assert writer.isOpened()
    for index in range(FRAMES):
        writer.write(scene.render(index).image)
    writer.release()
    return path, scene.render(0).box


@pytest.fixture
def otb_sequence(tmp_path):
    """DIR/img/0001.jpg ... and DIR/groundtruth_rect.txt, as OTB ships its sequences."""
    scene = _scene()
    folder = tmp_path / "Cat"
    (folder / "img").mkdir(parents=True)
    lines = []
    for index in range(FRAMES):
        frame = scene.render(index)
        cv2.imwrite(str(folder / "img" / f"{index + 1:04d}.jpg"), frame.image)
        lines.append("\t".join(f"{v:.0f}" for v in frame.box))  # OTB files: integers
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    first = tuple(float(round(v)) for v in scene.render(0).box)
    return str(folder), first


def _result_boxes(path):
    rows = [line.split(",") for line in open(path).read().splitlines()]
    assert all(len(row) == 4 for row in rows), rows
    return np.array([[float(v) for v in row] for row in rows])


def _count_frames(path):
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def test_video_to_results_file_and_annotated_video(cli_env, tiny_checkpoint, short_video, tmp_path):
    video, truth = short_video
    box = ",".join(f"{v:.1f}" for v in truth)
    results = tmp_path / "out" / "boxes.txt"
    run = ros_tracker(
        ["track", tiny_checkpoint, "--video", video, "--box", box, "--out", str(results)], cli_env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # boxes went to the file, progress to stderr
    assert "track hit_tiny" in run.stderr and f"tracked {FRAMES} frames" in run.stderr
    boxes = _result_boxes(results)
    assert boxes.shape == (FRAMES, 4)
    np.testing.assert_allclose(boxes[0], [round(v, 1) for v in truth], atol=1e-3)
    assert np.all(boxes[1:, 2:] > 0)  # tracked boxes inside the image, with a size
    assert np.all(boxes[1:, 0] + boxes[1:, 2] <= SIZE[0] + 1e-3)

    annotated = tmp_path / "annotated.mp4"
    run = ros_tracker(
        ["track", tiny_checkpoint, "--video", video, "--box", box, "--out", str(annotated)]
        + ["--backend", "torch"],
        cli_env,
    )
    assert run.returncode == 0, run.stderr
    frames = _count_frames(str(annotated))
    assert len(frames) == FRAMES
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)
    # The first frame carries the given box, drawn in the TRACKING colour (green).
    original = _count_frames(video)[0].astype(np.int16)
    x, y, w, _ = (int(round(v)) for v in truth)
    edge = (slice(y - 1, y + 2), slice(x + 5, x + w - 5))
    drawn = frames[0].astype(np.int16)[edge]
    assert drawn[..., 1].mean() - original[edge][..., 1].mean() > 40


def test_otb_sequence_uses_its_ground_truth(cli_env, tiny_checkpoint, otb_sequence, tmp_path):
    folder, first_box = otb_sequence
    results = tmp_path / "seq.txt"
    run = ros_tracker(
        ["track", tiny_checkpoint, "--sequence", folder, "--out", str(results)], cli_env
    )
    assert run.returncode == 0, run.stderr
    boxes = _result_boxes(results)
    assert boxes.shape == (FRAMES, 4)
    assert tuple(boxes[0]) == first_box
    assert "against the ground truth" in run.stderr  # scored against groundtruth_rect.txt


def test_sequence_boxes_to_stdout_in_process(otb_sequence, tmp_path, capsys):
    folder, first_box = otb_sequence
    code = cli_main(
        ["track", "hit_tiny", "--sequence", folder, "--backend", "torch", "--frames", "3"]
        + ["--box", "20,30,40,50"]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0] == "20.000,30.000,40.000,50.000"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--video", "missing.mp4", "--box", "1,2,3,4"], "video file not found: missing.mp4"),
        (["--sequence", "missing_dir"], "sequence folder not found: missing_dir"),
        (["--video", "{video}"], "--box x,y,w,h is required"),
        (["--video", "{video}", "--box", "1,2,3"], "four numbers x,y,w,h"),
        (["--video", "{video}", "--box", "1,2,0,4"], "zero or negative size"),
        (["--video", "{video}", "--box", "900,2,30,40"], "entirely outside the 320x240 image"),
        (["--video", "{video}", "--box", "1,2,3,4", "--out", "x.png"], "expected a video"),
    ],
)
def test_clear_errors(extra, message, short_video, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video, _ = short_video
    args = ["track", "hit_tiny"] + [a.replace("{video}", video) for a in extra]
    assert cli_main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("ros-tracker track: error: ") and message in err
    assert not os.path.exists(tmp_path / "x.png")


def test_a_source_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["track", "hit_tiny", "--box", "1,2,3,4"])
    assert exit_info.value.code == 2
    assert "one of the arguments --video --sequence --camera --synthetic" in capsys.readouterr().err
