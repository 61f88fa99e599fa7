"""``ros-tracker track MODEL (--video PATH | --sequence DIR | --camera N) [--box x,y,w,h]
[--out FILE]``.

Offline tracking without ROS: the tracker runtime over a video file, a sequence folder, a
camera or the built-in synthetic scene. ``--out`` decides what is written:

* ``.mp4`` / ``.avi``: the frames with the box, score and rate drawn (and the ground truth
  where the source has it);
* ``.txt``: one ``x,y,w,h`` box per frame in image pixels, the first line the given box
  (the format ``eval --out`` writes);
* no ``--out``: the same lines on stdout.

``--box`` is needed unless the source knows the first frame's box: a sequence folder with a
ground-truth file (OTB layout ``DIR/groundtruth_rect.txt`` + ``DIR/img/``, or the
``groundtruth.txt`` of GOT-10k and LaSOT sequences), or ``--synthetic``. A camera runs until
``--frames`` frames or Ctrl-C. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from typing import Iterator, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from ros_tracker.cli.common import add_inference_arguments, parse_box, positive_int

LOGGER = logging.getLogger("ros_tracker.cli")

Box = Tuple[float, float, float, float]
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
RESULTS_SUFFIX = ".txt"
# Ground-truth files of one sequence folder, in the order they are looked for.
GROUND_TRUTH_FILES = ("groundtruth_rect.txt", "groundtruth_rect.1.txt", "groundtruth.txt")
DEFAULT_SEQUENCE_FPS = 30.0
DEFAULT_SYNTHETIC_FRAMES = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="zoo name, .safetensors file or ONNX export")
    sources = parser.add_mutually_exclusive_group(required=True)
    sources.add_argument("--video", metavar="PATH", help="video file")
    sources.add_argument(
        "--sequence",
        metavar="DIR",
        help="folder of images, or a benchmark sequence (DIR/groundtruth_rect.txt + DIR/img/)",
    )
    sources.add_argument("--camera", metavar="N", type=int, help="V4L2 camera index")
    sources.add_argument(
        "--synthetic", action="store_true", help="the built-in scene (ground truth known)"
    )
    parser.add_argument(
        "--box",
        metavar="x,y,w,h",
        help="target in the first frame, pixels (default: the source's ground truth)",
    )
    parser.add_argument(
        "--out", metavar="FILE", help="annotated .mp4/.avi, or .txt boxes (default: stdout)"
    )
    parser.add_argument(
        "--frames", type=positive_int, default=None, help="stop after N frames (camera: N)"
    )
    add_inference_arguments(parser)


# -------------------------------------------------------------------------------- inputs
class TrackInput:
    """Frames with optional ground truth, from one of the command's sources."""

    def __init__(
        self,
        description: str,
        frames: Iterator[Tuple[np.ndarray, Optional[Box]]],
        fps: float,
        num_frames: Optional[int],
        close=None,
    ) -> None:
        self.description = description
        self.frames = frames
        self.fps = fps
        self.num_frames = num_frames
        self._close = close

    def close(self) -> None:
        if self._close is not None:
            self._close()


def _from_frame_source(source) -> TrackInput:
    frames = ((frame.image, frame.box) for frame in source)
    return TrackInput(source.description, frames, source.fps, source.num_frames, source.close)


def _sequence_images(folder: str) -> List[str]:
    from ros_tracker.evaluation.readers import list_images

    image_dir = os.path.join(folder, "img")
    return list_images(image_dir if os.path.isdir(image_dir) else folder)


def _open_sequence(folder: str) -> TrackInput:
    """A sequence folder: benchmark layout with ground truth, or just images."""
    import cv2

    from ros_tracker.evaluation.readers import _otb_frames, read_boxes

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"sequence folder not found: {folder}")
    images = _sequence_images(folder)
    if not images:
        raise ValueError(f"no images (.jpg, .jpeg, .png, .bmp) in {folder} or {folder}/img")
    truth: Optional[np.ndarray] = None
    for name in GROUND_TRUTH_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            truth = read_boxes(path)
            if len(truth) == 0:
                raise ValueError(f"ground-truth file {path} holds no box")
            if len(truth) > 1:
                # Where a folder holds more images than boxes, the toolkit's frame range.
                images = _otb_frames(os.path.basename(os.path.normpath(folder)), images, len(truth))
            LOGGER.info("ground truth from %s", path)
            break

    def frames() -> Iterator[Tuple[np.ndarray, Optional[Box]]]:
        for index, path in enumerate(images):
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot read image {path}")
            box: Optional[Box] = None
            if truth is not None and index < len(truth) and np.all(np.isfinite(truth[index])):
                x, y, w, h = (float(v) for v in truth[index])
                box = (x, y, w, h)
            yield image, box

    described = f"sequence {folder} ({len(images)} images"
    described += ", ground truth)" if truth is not None else ")"
    return TrackInput(described, frames(), DEFAULT_SEQUENCE_FPS, len(images))


def open_input(args: argparse.Namespace) -> TrackInput:
    from ros_tracker.sources import CameraSource, SyntheticScene, VideoFileSource

    if args.video is not None:
        if not os.path.isfile(args.video):
            raise FileNotFoundError(f"video file not found: {args.video}")
        return _from_frame_source(VideoFileSource(args.video))
    if args.sequence is not None:
        return _open_sequence(args.sequence)
    if args.camera is not None:
        return _from_frame_source(CameraSource(args.camera))
    frames = args.frames or DEFAULT_SYNTHETIC_FRAMES
    return _from_frame_source(SyntheticScene(frames=frames))


def initial_box(given: Optional[str], truth: Optional[Box], image: np.ndarray, what: str) -> Box:
    """The box to start from: ``--box`` if given, else the first frame's ground truth."""
    from ros_tracker.runtime.box_validation import validate_initial_box

    if given is not None:
        box = parse_box(given)
    elif truth is not None:
        box = truth
    else:
        raise ValueError(
            f"--box x,y,w,h is required: {what} has no ground truth for the first frame"
        )
    height, width = image.shape[:2]
    check = validate_initial_box(box, (width, height))
    if not check.ok:
        raise ValueError(f"invalid box {given or box}: {check.reason}")
    if check.clipped:
        LOGGER.warning(
            "the box reaches past the %dx%d image: tracking its visible part", width, height
        )
    return box


# ------------------------------------------------------------------------------- outputs
class BoxWriter:
    """``x,y,w,h`` lines, one per frame, to a file or stdout."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self._handle: TextIO = open(path, "w", encoding="utf-8") if path else sys.stdout

    def write(self, box: Sequence[float], image: np.ndarray, score: float, truth, fps) -> None:
        self._handle.write(",".join(f"{float(v):.3f}" for v in box) + "\n")

    def close(self) -> None:
        if self.path:
            self._handle.close()
        else:
            self._handle.flush()


class VideoWriter:
    """The frames with the tracking drawn, as a video at the source's rate."""

    def __init__(self, path: str, fps: float, model: str) -> None:
        self.path = path
        self.fps = fps if 0.0 < fps < 1000.0 else DEFAULT_SEQUENCE_FPS
        self.model = model
        self.frames_written = 0
        self._writer = None

    def write(self, box: Sequence[float], image: np.ndarray, score: float, truth, fps) -> None:
        import cv2

        from ros_tracker.visualization import draw_tracking

        drawn = draw_tracking(image, box, score, "TRACKING", fps, truth, label=self.model)
        if self._writer is None:
            height, width = drawn.shape[:2]
            codec = VIDEO_CODECS[os.path.splitext(self.path)[1].lower()]
            self._writer = cv2.VideoWriter(
                self.path, cv2.VideoWriter_fourcc(*codec), self.fps, (width, height)
            )
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot write video {self.path} (codec {codec})")
        self._writer.write(drawn)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def check_out_path(path: Optional[str]) -> None:
    """Refuse an output the command cannot write before any work is done."""
    if path is None:
        return
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in VIDEO_CODECS and suffix != RESULTS_SUFFIX:
        raise ValueError(f"--out {path}: expected a video (.mp4, .avi) or a results file (.txt)")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--out {path}: {folder} is not a folder")
    os.makedirs(folder, exist_ok=True)


def open_output(path: Optional[str], fps: float, model: str):
    if path is not None and os.path.splitext(path)[1].lower() in VIDEO_CODECS:
        return VideoWriter(path, fps, model)
    return BoxWriter(path)


# ---------------------------------------------------------------------------------- run
def _accuracy_line(predicted: List[Box], truth: List[Optional[Box]]) -> Optional[str]:
    """Success AUC and mean IoU against the source's ground truth, where it has some."""
    from ros_tracker.evaluation.metrics import PROTOCOLS, overlaps, score_sequence, summarize

    pred = np.asarray(predicted, dtype=np.float64).reshape(-1, 4)
    gt = np.array([t if t is not None else (math.nan,) * 4 for t in truth], np.float64)
    valid = ~np.any(np.isnan(gt.reshape(-1, 4)), axis=1)
    if len(pred) < 2 or not valid[1:].any():
        return None
    protocol = PROTOCOLS["uav123"]  # frames without ground truth are left out
    summary = summarize([score_sequence("track", pred, gt.reshape(-1, 4), protocol)], protocol)
    mean_iou = float(overlaps(pred[valid], gt.reshape(-1, 4)[valid]).mean())
    return (
        f"against the ground truth ({int(valid.sum())} frames): success AUC {summary.auc:.3f}, "
        f"precision@20px {summary.precision:.3f}, mean IoU {mean_iou:.3f}"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ros_tracker.runtime.factory import build_tracker

    check_out_path(args.out)
    source = open_input(args)
    try:
        first = next(source.frames, None)
        if first is None:
            raise ValueError(f"{source.description}: no frame to track")
        first_image, first_truth = first
        box = initial_box(args.box, first_truth, first_image, source.description)
        tracker = build_tracker(
            args.model,
            backend=args.backend,
            device=args.device,
            precision=args.precision,
            engine_cache_dir=args.engine_cache_dir,
            threads=args.threads,
            box_policy=args.box_policy,
        )
        return _track(args, tracker, source, first_image, first_truth, box, tqdm)
    finally:
        source.close()


def _track(args, tracker, source: TrackInput, first_image, first_truth, box: Box, tqdm) -> int:
    limit = args.frames
    total = source.num_frames if limit is None else min(limit, source.num_frames or limit)
    output = open_output(args.out, source.fps, tracker.model_name)
    bar = tqdm(total=total, desc=f"track {tracker.model_name}", unit="frame", file=sys.stderr)
    predicted: List[Box] = [box]
    truth: List[Optional[Box]] = [first_truth]
    step_ms: List[float] = []
    interrupted = False
    try:
        tracker.initialize(first_image, box)
        output.write(box, first_image, 1.0, first_truth, 0.0)
        bar.update(1)
        for image, frame_truth in source.frames:
            if limit is not None and len(predicted) >= limit:
                break
            start = time.perf_counter()
            result = tracker.track(image)
            step_ms.append((time.perf_counter() - start) * 1e3)
            fps = 1e3 / float(np.mean(step_ms[-30:]))
            output.write(result.box, image, result.score, frame_truth, fps)
            predicted.append(result.box)
            truth.append(frame_truth)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        output.close()
        backend = tracker.backend_name
        tracker.close()
    _report(args, tracker.model_name, backend, predicted, truth, step_ms, interrupted)
    if interrupted and args.camera is None:
        return 130  # a camera is stopped with Ctrl-C; anything else ended early
    return 0


def _report(args, model, backend, predicted, truth, step_ms, interrupted) -> None:
    lines = [
        f"tracked {len(predicted)} frames with {model} on {backend}"
        + (" (interrupted)" if interrupted else "")
    ]
    if step_ms:
        median = float(np.median(step_ms))
        lines.append(f"tracking step median {median:.1f} ms ({1e3 / median:.1f} fps)")
    accuracy = _accuracy_line(predicted, truth)
    if accuracy:
        lines.append(accuracy)
    if args.out:
        lines.append(f"written: {args.out}")
    print("\n".join(lines), file=sys.stderr)
