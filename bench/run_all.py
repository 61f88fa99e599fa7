"""Export, verify and benchmark every zoo model on several backends; writes a markdown table.

    python bench/run_all.py [--backends auto,torch] [--device auto] [--frames 50]
                            [--threads N] [--out bench/RESULTS.md]

Each model is exported to ONNX (fp32, checked against PyTorch on random inputs), then
tracked through the synthetic 640x480 scene with ``ros-tracker bench``'s code, once per
backend (``auto`` is the fastest that loads here; ``torch`` the PyTorch reference). The
machine (CPU model, cores) and the load average before and after each row are recorded:
figures are only comparable between runs on the same machine, backend and thread count, and
on a shared machine only the ratios within one run mean much. PyTorch's OpenMP threads
busy-wait between operations unless ``OMP_WAIT_POLICY=PASSIVE`` is set (read when torch is
loaded); ONNX Runtime's backend never spins. On a loaded machine that alone can make PyTorch
several times slower, so the variable's value is recorded.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from typing import List, Optional

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_machine import cpu_model  # noqa: E402

from ros_tracker.cli.bench import run_benchmark  # noqa: E402
from ros_tracker.export.onnx import op_counts, verify_export  # noqa: E402
from ros_tracker.runtime.model_files import resolve_model  # noqa: E402
from ros_tracker.zoo.registry import list_models  # noqa: E402


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: every zoo model")
    parser.add_argument(
        "--backends", default="auto,torch", help="comma-separated, measured in this order"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--engine-cache-dir", default=None)
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "RESULTS.md"))
    args = parser.parse_args(argv)
    cache = args.engine_cache_dir or tempfile.mkdtemp(prefix="ros_tracker_bench_")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.threads:
        torch.set_num_threads(args.threads)  # ONNX Runtime gets the same count below
    threads = args.threads or torch.get_num_threads()
    load_before = load_average()
    rows = []
    for name in args.models or list_models():
        source = resolve_model(name)
        network = source.build_network()
        start = time.perf_counter()
        export = source.onnx_export(cache)
        export_s = time.perf_counter() - start
        report = verify_export(network, export, trials=1)
        measured = set()
        for backend in backends:
            load = load_average()
            result = run_benchmark(
                name,
                backend=backend,
                device=args.device,
                precision=args.precision,
                frames=args.frames,
                threads=args.threads,
                engine_cache_dir=cache,
                source=source,
            )
            if result["backend"] in measured:  # "auto" fell back to a backend already run
                continue
            measured.add(result["backend"])
            uses_onnx = not result["backend"].startswith("torch")
            stages = result["stages"]
            cells = [
                name,
                result["backend"],
                f"{report.max_abs_error:.1e}" if uses_onnx else "-",
                str(op_counts(export.search_path).get("LayerNormalization", 0))
                if uses_onnx
                else "-",
                f"{export_s:.1f}" if uses_onnx else "-",
            ]
            cells += [
                f"{stages[s]['median_ms']:.2f}" for s in ("conversion", "preprocess", "inference")
            ]
            cells += [f"{stages['inference']['p95_ms']:.2f}"]
            cells += [f"{stages[s]['median_ms']:.2f}" for s in ("postprocess", "total")]
            ratio = result["total_ms"] / result["inference_ms"]
            cells += [f"{result['fps']:.1f}", f"{ratio:.2f}", f"{load:.1f}"]
            rows.append("| " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    load_after = load_average()
    lines = [
        "# Deployment benchmark",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, {threads} inference threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {_onnxruntime_version()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} (PyTorch's threads; "
        "ONNX Runtime's never spin); "
        f"{args.frames} frames of the synthetic 640x480 "
        "scene per model and backend after 5 warm-up frames, random-initialised weights where "
        "no trained weights exist (latency does not depend on the weights). Times in ms, "
        "medians unless marked p95; `load` is the 1-minute load average when the row started.",
        f"Load average before / after the run: {load_before:.1f} / {load_after:.1f} "
        f"(above {os.cpu_count()}, other work shared the CPU and the figures are noisy).",
        "",
        "| model | backend | ONNX max abs err | LayerNorm nodes | export s | conversion "
        "| preprocess | inference | inference p95 | postprocess | total | fps | total/inference "
        "| load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines + rows) + "\n")
    print(args.out)
    return 0


def _onnxruntime_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "not installed"
    return onnxruntime.__version__


if __name__ == "__main__":
    sys.exit(main())
