"""``ros-tracker eval MODEL --dataset DIR --format otb|got10k|lasot|uav123|trackingnet``.

One-pass evaluation: MODEL (a zoo model on any backend, or OpenCV's csrt / kcf / mil) and
any ``--peers`` run over every sequence of the dataset, initialised on the first
ground-truth box. Results are written in the benchmarks' format and reused when the command
is run again (finished sequences are not rerun):

    <out>/<sequence>.txt, <out>/<sequence>_time.txt          MODEL
    <out>/peers/<peer>/<sequence>.txt, ..._time.txt           each peer
    <out>/report.json                                         all metrics, curves, attributes
    <out>/plots.png                                           with --plot

The table (every tracker, then AUC per attribute where the dataset has attributes) goes to
stdout, or to stderr with ``--json``, which prints only the eval JSON of the INTERFACE on
stdout. A composed test set (``ros-tracker eval-build-composite``) is labelled "composite"
in the table, the JSON and the plot: its figures are not benchmark scores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import List

from ros_tracker.cli.common import add_inference_arguments, choice, positive_int, print_json

LOGGER = logging.getLogger("ros_tracker.cli")

FORMATS = ("otb", "got10k", "lasot", "uav123", "trackingnet")
DEFAULT_RESULTS_DIR = "eval_results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keeps the layout block
    parser.description = __doc__.split("\n\n", 1)[1].strip()
    parser.epilog = (
        "A small test set composed from real images and videos:\n"
        "  ros-tracker eval-build-composite DIR\n"
        "  ros-tracker eval MODEL --dataset DIR --format otb --peers csrt,kcf,mil --plot"
    )
    parser.add_argument("model", help="zoo name, .safetensors file, ONNX export, or csrt/kcf/mil")
    parser.add_argument("--dataset", required=True, help="dataset folder (root or one split)")
    parser.add_argument(
        "--format", required=True, type=choice("format", FORMATS), help="the dataset's layout"
    )
    parser.add_argument(
        "--split",
        default=None,
        help="got10k: val|test; trackingnet: test|train|TRAIN_<i>; lasot: test|train|all; "
        "otb/uav123 with a split.json (composite): train|test",
    )
    parser.add_argument(
        "--out",
        default=None,
        help=f"result folder of MODEL (default {DEFAULT_RESULTS_DIR}/<dataset>-<format>/<model>)",
    )
    parser.add_argument("--plot", action="store_true", help="write <out>/plots.png")
    parser.add_argument("--json", action="store_true", help="print only the eval JSON to stdout")
    parser.add_argument(
        "--peers", default="", help="comma-separated OpenCV trackers to compare: csrt,kcf,mil"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="sequences in parallel processes"
    )
    add_inference_arguments(
        parser, threads_help="CPU threads per worker (default: cores / workers)"
    )


def _peer_names(text: str, model: str) -> List[str]:
    from ros_tracker.evaluation.peers import PEER_NAMES

    names: List[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in PEER_NAMES:
            raise ValueError(f"unknown peer {raw!r} (choose from {', '.join(PEER_NAMES)})")
        if name != model.strip().lower() and name not in names:
            names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    from ros_tracker.evaluation.readers import read_dataset
    from ros_tracker.evaluation.report import (
        dataset_title,
        format_table,
        report_dict,
        score_tracker,
    )
    from ros_tracker.evaluation.runner import TrackerSpec, default_threads, run_tracker

    dataset = read_dataset(args.dataset, args.format, args.split)
    threads = args.threads or default_threads(args.workers)
    model = TrackerSpec(
        args.model,
        args.backend,
        args.device,
        args.precision,
        threads,
        args.engine_cache_dir,
        args.box_policy,
    )
    specs = [model] + [
        TrackerSpec(name, threads=threads) for name in _peer_names(args.peers, args.model)
    ]
    label = dataset.name + (f"-{dataset.split}" if dataset.split else "")
    out_dir = args.out or os.path.join(DEFAULT_RESULTS_DIR, f"{label}-{dataset.format}", model.name)
    out_dir = os.path.abspath(out_dir)
    result_dirs = [out_dir] + [os.path.join(out_dir, "peers", s.name) for s in specs[1:]]

    print(
        f"evaluating {', '.join(s.name for s in specs)} on {dataset_title(dataset)}: "
        f"{len(dataset.sequences)} sequences, {sum(len(s) for s in dataset.sequences)} frames",
        file=sys.stderr,
    )
    for spec, result_dir in zip(specs, result_dirs):
        ran = run_tracker(spec, dataset, result_dir, workers=args.workers)
        skipped = len(dataset.sequences) - len(ran)
        if skipped:
            print(
                f"{spec.name}: {skipped} finished sequences reused from {result_dir}",
                file=sys.stderr,
            )

    reports = [score_tracker(dataset, d, s.name) for s, d in zip(specs, result_dirs)]
    report_path = os.path.join(out_dir, "report.json")
    with open(report_path, "w", encoding="utf-8") as handle:
        json.dump(report_dict(dataset, reports), handle, indent=1)
    table = format_table(dataset, reports)
    print(table, file=sys.stderr if args.json else sys.stdout)
    print(f"results: {out_dir}; report: {report_path}", file=sys.stderr)
    if args.plot:
        from ros_tracker.evaluation.plots import plot_success_precision

        if dataset.has_ground_truth:
            path = plot_success_precision(
                reports,
                os.path.join(out_dir, "plots.png"),
                f"One-pass evaluation on {dataset_title(dataset)}",
            )
            print(f"plot: {path}", file=sys.stderr)
        else:
            print("no plot: this split has no public ground truth", file=sys.stderr)
    if args.json:
        print_json(
            {
                "model": model.name,
                "dataset": dataset.name,
                "format": dataset.format,
                "sequences": len(dataset.sequences),
                "metrics": reports[0].summary.metrics(),
            }
        )
    return 0
