"""One-pass evaluation runner: one tracker over every sequence of a dataset, resumable.

Any object with ``initialize(image, box)`` and ``track(image)`` runs here: the zoo models
through ros_tracker.runtime (``track`` returns a TrackResult) and OpenCV's CSRT/KCF/MIL
through ros_tracker.evaluation.peers (``track`` returns ``(box, score)``). Each is
initialised on the first frame with the first ground-truth box and run over the rest, one
pass, never re-initialised. Times are wall-clock per call (initialisation for the first
frame), image decoding excluded.

Results per sequence, in the benchmarks' own format: ``<dir>/<sequence>.txt`` with one
``x,y,w,h`` line per frame (the first line the given box), ``<dir>/<sequence>_time.txt``
with one time in seconds per frame and ``<dir>/<sequence>_score.txt`` with the tracker's
confidence per frame (1 for the first). Both are written to temporary names and renamed, the box
file last, so a finished sequence is exactly one whose box file exists with one line per
frame; a rerun skips those (resume after an interruption). ``<dir>/run.json`` names the
tracker, so results of another tracker or backend are never mixed in.

Sequences run in separate processes when ``workers > 1`` (multiprocessing with spawn: each
worker builds its tracker once); the default is one worker in this process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, List, NamedTuple, Optional, Protocol, Tuple

import numpy as np

from ros_tracker.evaluation.peers import OpenCVTracker, is_peer
from ros_tracker.evaluation.readers import Dataset, Sequence, parse_boxes

RUN_FILE = "run.json"


class SequenceTracker(Protocol):
    """What the runner needs from a tracker."""

    def initialize(self, image: np.ndarray, box: Tuple[float, float, float, float]) -> None: ...

    def track(self, image: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class TrackerSpec:
    """How to build a tracker in any process (picklable, so spawned workers can build it)."""

    model: str  # zoo name, .safetensors / ONNX path, or csrt / kcf / mil
    backend: str = "auto"
    device: str = "auto"
    precision: str = "fp32"
    threads: Optional[int] = None
    engine_cache_dir: Optional[str] = None
    box_policy: str = "card"  # runtime.box_policy

    @property
    def is_peer(self) -> bool:
        return is_peer(self.model)

    @property
    def name(self) -> str:
        """Label in tables and plots: the peer or model name (file stem for paths)."""
        if self.is_peer:
            return self.model.strip().lower()
        stem = os.path.basename(os.path.normpath(self.model))
        for suffix in (".safetensors", ".onnx"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
        return stem

    def identity(self) -> dict:
        data = asdict(self)
        data.pop("threads")
        data.pop("engine_cache_dir")
        if self.is_peer:
            data.update(backend="opencv", device="cpu", precision="fp32")
            data.pop("box_policy")
        elif self.box_policy in ("", "card"):
            data.pop("box_policy")  # results written before the policy existed stay valid
        return data

    def build(self) -> SequenceTracker:
        if self.is_peer:
            if self.threads:
                import cv2

                cv2.setNumThreads(int(self.threads))
            return OpenCVTracker(self.model)
        from ros_tracker.runtime.factory import build_tracker

        return build_tracker(
            self.model,
            backend=self.backend,
            device=self.device,
            precision=self.precision,
            threads=self.threads,
            engine_cache_dir=self.engine_cache_dir,
            box_policy=self.box_policy,
        )


def read_image(path: str) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot read image {path}")
    return image


def _box_of(result: Any) -> Tuple[float, float, float, float]:
    """The box of a track() result: a TrackResult, a (box, score) pair or a bare box."""
    box = getattr(result, "box", None)
    if box is None:
        box = result[0] if len(result) == 2 else result
    x, y, w, h = (float(v) for v in box)
    return (x, y, w, h)


def _score_of(result: Any) -> float:
    """The confidence of a track() result (NaN for a bare box)."""
    score = getattr(result, "score", None)
    if score is None and isinstance(result, tuple) and len(result) == 2:
        score = result[1]
    return float("nan") if score is None else float(score)


class SequenceRun(NamedTuple):
    """One pass over a sequence: boxes (N, 4), per-frame seconds (N,), confidences (N,)."""

    boxes: np.ndarray
    times: np.ndarray
    scores: np.ndarray


def run_sequence(
    tracker: SequenceTracker,
    sequence: Sequence,
    on_frame: Optional[Callable[[], None]] = None,
) -> SequenceRun:
    """Boxes, per-frame seconds and confidences (1 on the first frame) of one pass."""
    box = sequence.initial_box
    if not all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"sequence {sequence.name}: first ground-truth box is invalid: {box}")
    boxes = np.zeros((len(sequence), 4), dtype=np.float64)
    times = np.zeros(len(sequence), dtype=np.float64)
    scores = np.ones(len(sequence), dtype=np.float64)
    image = read_image(sequence.frames[0])
    start = time.perf_counter()
    tracker.initialize(image, box)
    times[0] = time.perf_counter() - start
    boxes[0] = box
    if on_frame is not None:
        on_frame()
    for index in range(1, len(sequence)):
        image = read_image(sequence.frames[index])
        start = time.perf_counter()
        result = tracker.track(image)
        times[index] = time.perf_counter() - start
        boxes[index] = _box_of(result)
        scores[index] = _score_of(result)
        if on_frame is not None:
            on_frame()
    return SequenceRun(boxes, times, scores)


# ---------------------------------------------------------------------------------- files
def result_paths(out_dir: str, name: str) -> Tuple[str, str]:
    return os.path.join(out_dir, name + ".txt"), os.path.join(out_dir, name + "_time.txt")


def score_path(out_dir: str, name: str) -> str:
    return os.path.join(out_dir, name + "_score.txt")


def _write_atomic(path: str, text: str) -> None:
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def write_results(
    out_dir: str,
    name: str,
    boxes: np.ndarray,
    times: np.ndarray,
    scores: Optional[np.ndarray] = None,
) -> None:
    os.makedirs(out_dir, exist_ok=True)
    box_path, time_path = result_paths(out_dir, name)
    _write_atomic(time_path, "".join(f"{t:.8f}\n" for t in times))
    if scores is not None:
        _write_atomic(score_path(out_dir, name), "".join(f"{v:.5f}\n" for v in scores))
    _write_atomic(box_path, "".join(",".join(f"{v:.3f}" for v in b) + "\n" for b in boxes))


def read_results(out_dir: str, name: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    box_path, time_path = result_paths(out_dir, name)
    with open(box_path, encoding="utf-8") as handle:
        boxes = parse_boxes(handle.read(), box_path)
    times = None
    if os.path.isfile(time_path):
        with open(time_path, encoding="utf-8") as handle:
            times = np.asarray([float(v) for v in handle.read().split()], dtype=np.float64)
    return boxes, times


def read_scores(out_dir: str, name: str) -> Optional[np.ndarray]:
    """The confidences of a result, None where none were recorded (or a bare-box tracker)."""
    path = score_path(out_dir, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        values = np.asarray([float(v) for v in handle.read().split()], dtype=np.float64)
    return None if np.isnan(values[1:]).all() else values


def is_finished(out_dir: str, sequence: Sequence) -> bool:
    box_path, _ = result_paths(out_dir, sequence.name)
    if not os.path.isfile(box_path):
        return False
    with open(box_path, encoding="utf-8") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines == len(sequence)


def claim_result_dir(out_dir: str, spec: TrackerSpec, dataset: Dataset) -> None:
    """Create ``out_dir`` for ``spec``, refusing one that holds another tracker's results."""
    os.makedirs(out_dir, exist_ok=True)
    identity = dict(spec.identity(), dataset=dataset.root, format=dataset.format)
    path = os.path.join(out_dir, RUN_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            previous = json.load(handle)
        if previous != identity:
            changed = sorted(
                k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k)
            )
            were = ", ".join(f"{k}={previous.get(k)!r}" for k in changed)
            raise RuntimeError(
                f"{out_dir} holds results of another run ({were}); "
                "choose another --out or remove it"
            )
        return
    _write_atomic(path, json.dumps(identity, indent=1) + "\n")


# ------------------------------------------------------------------------------- running
_WORKER_TRACKER: Optional[SequenceTracker] = None


def _init_worker(spec: TrackerSpec) -> None:
    global _WORKER_TRACKER
    _WORKER_TRACKER = spec.build()


def _run_in_worker(job: Tuple[Sequence, str]) -> Tuple[str, int]:
    sequence, out_dir = job
    assert _WORKER_TRACKER is not None
    write_results(out_dir, sequence.name, *run_sequence(_WORKER_TRACKER, sequence))
    return sequence.name, len(sequence)


def run_tracker(
    spec: TrackerSpec,
    dataset: Dataset,
    out_dir: str,
    workers: int = 1,
    progress: bool = True,
) -> List[str]:
    """Run ``spec`` over the unfinished sequences of ``dataset``; returns the ones it ran."""
    from tqdm import tqdm

    claim_result_dir(out_dir, spec, dataset)
    todo = [s for s in dataset.sequences if not is_finished(out_dir, s)]
    if not todo:
        return []
    workers = max(1, min(int(workers), len(todo)))
    bar = tqdm(
        total=sum(len(s) for s in todo),
        unit="frame",
        desc=f"{spec.name} ({len(todo)} seq)",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    try:
        if workers == 1:
            tracker = spec.build()
            for sequence in todo:
                run = run_sequence(tracker, sequence, on_frame=lambda: bar.update(1))
                write_results(out_dir, sequence.name, *run)
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
                jobs = [(sequence, out_dir) for sequence in todo]
                for _, frames in pool.imap_unordered(_run_in_worker, jobs):
                    bar.update(frames)
    finally:
        bar.close()
    return [s.name for s in todo]


def default_threads(workers: int) -> int:
    """CPU threads per worker so that the workers together use every core once."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
