"""Export, verify and benchmark every zoo model; writes a markdown table.

    python bench/run_all.py [--backend auto] [--device auto] [--frames 50] [--out bench/RESULTS.md]

Each model is exported to ONNX (fp32, checked against PyTorch on random inputs), then
tracked through the synthetic 640x480 scene with ``ros-tracker bench``'s code. Figures are
only comparable between runs on the same machine, backend and thread count.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from typing import List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ros_tracker.cli.bench import run_benchmark  # noqa: E402
from ros_tracker.export.onnx import op_counts, verify_export  # noqa: E402
from ros_tracker.runtime.model_files import resolve_model  # noqa: E402
from ros_tracker.zoo.registry import list_models  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: every zoo model")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--engine-cache-dir", default=None)
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "RESULTS.md"))
    args = parser.parse_args(argv)
    cache = args.engine_cache_dir or tempfile.mkdtemp(prefix="ros_tracker_bench_")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for name in args.models or list_models():
        source = resolve_model(name)
        network = source.build_network()
        start = time.perf_counter()
        export = source.onnx_export(cache)
        export_s = time.perf_counter() - start
        report = verify_export(network, export, trials=1)
        result = run_benchmark(
            name,
            backend=args.backend,
            device=args.device,
            precision=args.precision,
            frames=args.frames,
            threads=args.threads,
            engine_cache_dir=cache,
            source=source,
        )
        stages = result["stages"]
        cells = [
            name,
            result["backend"],
            f"{report.max_abs_error:.1e}",
            str(op_counts(export.search_path).get("LayerNormalization", 0)),
            f"{export_s:.1f}",
        ]
        cells += [
            f"{stages[s]['median_ms']:.2f}" for s in ("conversion", "preprocess", "inference")
        ]
        cells += [f"{stages['inference']['p95_ms']:.2f}"]
        cells += [f"{stages[s]['median_ms']:.2f}" for s in ("postprocess", "total")]
        cells += [f"{result['fps']:.1f}", f"{result['total_ms'] / result['inference_ms']:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], file=sys.stderr)
    threads = args.threads or os.cpu_count()
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Deployment benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {threads} threads, "
        f"Python {platform.python_version()}; {args.frames} frames of the synthetic 640x480 "
        "scene per model, random-initialised weights where no trained weights exist "
        "(latency does not depend on the weights). Times in ms, medians unless marked p95.",
        f"Load average before / after the run: {load_before:.1f} / {load_after:.1f} "
        "(above the thread count, other work shared the CPU and the figures are noisy).",
        "",
        "| model | backend | ONNX max abs err | LayerNorm nodes | export s | conversion "
        "| preprocess | inference | inference p95 | postprocess | total | fps | total/inference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines + rows) + "\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
