"""How much a model's score map depends on its template (see
ros_tracker.evaluation.template_dependence), on the first frames of a dataset.

    python bench/template_dependence.py [MODEL] [--dataset ../shared/real_val --format otb]

MODEL is a zoo name, a .safetensors file or an ONNX export (default: the shipped default).
Similarity near 1 means the network scores the search crop alike whichever template it is
given: it follows objects, not its target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ros_tracker.evaluation.readers import read_dataset  # noqa: E402
from ros_tracker.evaluation.template_dependence import (  # noqa: E402
    first_frames,
    measure_template_dependence,
)
from ros_tracker.runtime.factory import build_tracker  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="hcat_mobilenetv2")
    parser.add_argument("--dataset", default=os.path.join(REPO, os.pardir, "shared", "real_val"))
    parser.add_argument("--format", default="otb")
    parser.add_argument("--split", default=None)
    parser.add_argument("--foreign", type=int, default=3, help="foreign templates per frame")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    dataset = read_dataset(args.dataset, args.format, args.split)
    frames = first_frames(dataset.sequences)
    with tempfile.TemporaryDirectory() as cache:
        tracker = build_tracker(
            args.model, backend=args.backend, threads=args.threads, engine_cache_dir=cache
        )
        report = measure_template_dependence(tracker, frames, args.foreign)
        tracker.close()
    print(f"{args.model} on the first frames of {dataset.root}:")
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
