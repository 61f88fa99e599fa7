"""``ros-tracker bench MODEL [--backend B] [--device D] [--frames N] [--json]``.

Per-stage latency of the whole tracking step on a 640x480 camera image, the synthetic scene
with its moving target, so that cropping follows a real track:

* ``conversion``: an rgb8 camera message to the BGR array the tracker takes (the node's own
  converter when the ROS message packages are importable, else the same numpy/OpenCV path);
* ``preprocess``: crop + resize + normalisation of the search region;
* ``inference``: the backend's per-frame half;
* ``postprocess``: decoding and mapping back to the image;
* ``total``: all of the above for one frame.

Median and 95th percentile per stage; ``fps`` is frames per second of the median total.
Warm-up frames (not counted) come first: the first calls include lazy initialisation.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ros_tracker.cli.common import add_inference_arguments, positive_int, print_json

IMAGE_SIZE = (640, 480)
STAGES = ("conversion", "preprocess", "inference", "postprocess", "total")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="zoo name, .safetensors file or ONNX export")
    add_inference_arguments(parser)
    parser.add_argument("--frames", type=positive_int, default=100, help="timed frames")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames first")
    parser.add_argument("--json", action="store_true", help="print only JSON to stdout")


def _rgb8_converter() -> Callable[[np.ndarray], Callable[[], np.ndarray]]:
    """Returns prepare(bgr) -> convert(), the timed part turning a camera frame into BGR."""
    try:
        from ros_tracker.nodes.image_conversion import image_msg_to_bgr, numpy_to_image_msg
    except ImportError:  # no ROS message packages: same work, on the raw bytes
        import cv2

        def prepare(bgr: np.ndarray) -> Callable[[], np.ndarray]:
            data = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes()
            height, width = bgr.shape[:2]

            def convert() -> np.ndarray:
                rgb = np.frombuffer(data, np.uint8).reshape(height, width, 3)
                return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

            return convert

        return prepare

    def prepare_msg(bgr: np.ndarray) -> Callable[[], np.ndarray]:
        import cv2

        msg = numpy_to_image_msg(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "rgb8")
        return lambda: image_msg_to_bgr(msg)

    return prepare_msg


def _summary(values: List[float]) -> Dict[str, float]:
    array = np.asarray(values, np.float64)
    return {
        "median_ms": round(float(np.median(array)), 4),
        "p95_ms": round(float(np.percentile(array, 95)), 4),
    }


def _device_of(backend_name: str) -> str:
    return "cpu" if backend_name.endswith("-cpu") else "cuda"


def run_benchmark(
    model: str,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    frames: int = 100,
    warmup: int = 5,
    threads: Optional[int] = None,
    engine_cache_dir: Optional[str] = None,
    progress: bool = True,
    source: Any = None,
    box_policy: str = "card",
) -> Dict[str, Any]:
    """Track the synthetic target for ``warmup + frames`` frames; the ``bench --json`` dict.

    ``source``: an already resolved ModelSource of ``model`` (skips resolving it again).
    """
    from tqdm import tqdm

    from ros_tracker.runtime.factory import build_tracker
    from ros_tracker.sources.synthetic import SyntheticScene

    tracker = build_tracker(
        model,
        backend=backend,
        device=device,
        precision=precision,
        engine_cache_dir=engine_cache_dir,
        threads=threads,
        source=source,
        box_policy=box_policy,
    )
    width, height = IMAGE_SIZE
    total_frames = warmup + frames + 1
    scene = SyntheticScene(width=width, height=height, frames=total_frames, seed=0)
    prepare = _rgb8_converter()
    first = scene.render(0)
    tracker.initialize(first.image, first.box)
    times: Dict[str, List[float]] = {stage: [] for stage in STAGES}
    # Frames are rendered ahead of the timed loop: drawing the scene is not tracking work.
    converters = [prepare(scene.render(i).image) for i in range(1, total_frames)]
    bar = tqdm(total=len(converters), desc=f"bench {tracker.model_name}", disable=not progress)
    try:
        for index, convert in enumerate(converters):
            start = time.perf_counter()
            image = convert()
            converted = time.perf_counter()
            result = tracker.track(image)
            done = time.perf_counter()
            bar.update(1)
            if index < warmup:
                continue
            times["conversion"].append((converted - start) * 1e3)
            for stage in ("preprocess", "inference", "postprocess"):
                times[stage].append(result.timings[stage])
            times["total"].append((done - start) * 1e3)
    finally:
        bar.close()
        backend_name = tracker.backend_name
        tracker.close()
    stages = {stage: _summary(values) for stage, values in times.items()}
    total_ms = stages["total"]["median_ms"]
    return {
        "model": tracker.model_name,
        "backend": backend_name,
        "device": _device_of(backend_name),
        "frames": frames,
        "image_size": [width, height],
        "stages": stages,
        "inference_ms": stages["inference"]["median_ms"],
        "total_ms": total_ms,
        "fps": round(1000.0 / total_ms, 2) if total_ms > 0 else 0.0,
    }


def format_report(result: Dict[str, Any]) -> str:
    lines = [
        f"{result['model']} on {result['backend']} ({result['device']}), "
        f"{result['frames']} frames of {result['image_size'][0]}x{result['image_size'][1]}",
        f"{'stage':<12} {'median ms':>10} {'p95 ms':>10}",
    ]
    for stage, values in result["stages"].items():
        lines.append(f"{stage:<12} {values['median_ms']:>10.2f} {values['p95_ms']:>10.2f}")
    ratio = result["total_ms"] / result["inference_ms"] if result["inference_ms"] > 0 else 0.0
    lines.append(
        f"{result['fps']:.1f} fps; whole frame / inference = {ratio:.2f} "
        "(what a benchmark of the network alone leaves out)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = run_benchmark(
        args.model,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        frames=args.frames,
        warmup=max(0, args.warmup),
        threads=args.threads,
        engine_cache_dir=args.engine_cache_dir,
        box_policy=args.box_policy,
        progress=sys.stderr.isatty() or not args.json,
    )
    if args.json:
        print_json(result)
    else:
        print(format_report(result))
    return 0
