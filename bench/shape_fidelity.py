"""How well a model gives back the box it was handed, for targets of every shape and size.

    python bench/shape_fidelity.py [MODEL] [--box-policy card|paper|key=value,...]

MODEL is a zoo name, a .safetensors file or an ONNX export (default: the shipped default).
Prints the IoU figures of ros_tracker.evaluation.shape_fidelity's cases (aspect 1:4 to 4:1,
sides 12 to 300 px, on real photographs; the same frame, a shift and two zooms) per target
size, and the worst cases.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ros_tracker.evaluation.shape_fidelity import check_shapes, photos  # noqa: E402
from ros_tracker.runtime.factory import build_tracker  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="hcat_mobilenetv2")
    parser.add_argument("--box-policy", default="card")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--worst", type=int, default=10, help="worst cases to list")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        tracker = build_tracker(
            args.model,
            backend=args.backend,
            threads=args.threads,
            engine_cache_dir=cache,
            box_policy=args.box_policy,
        )
        report = check_shapes(tracker.initialize, lambda frame: tracker.track(frame).box, photos())
    print(f"{args.model} (box policy {args.box_policy}):")
    print(report.summary(args.threshold))
    for case in sorted(report.cases, key=lambda c: c.iou)[: args.worst]:
        print("  " + case.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
