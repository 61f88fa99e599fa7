"""One-pass AUC from slightly different first boxes: how much of a score is luck (see
ros_tracker.evaluation.init_spread).

    python bench/init_spread.py [MODEL] [--box-policy card] [--repeats 4] [--jitter 0.04]

MODEL is a zoo name, a .safetensors file or an ONNX export (default: the shipped default);
the dataset defaults to ../shared/real_val. Run 0 starts from the benchmark's boxes (the
figure ``ros-tracker eval`` prints); compare settings by the mean and spread over the runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tqdm import tqdm  # noqa: E402

from ros_tracker.evaluation.init_spread import measure_spread  # noqa: E402
from ros_tracker.evaluation.readers import read_dataset  # noqa: E402
from ros_tracker.runtime.factory import build_tracker  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="hcat_mobilenetv2")
    parser.add_argument("--dataset", default=os.path.join(REPO, os.pardir, "shared", "real_val"))
    parser.add_argument("--format", default="otb")
    parser.add_argument("--split", default=None)
    parser.add_argument("--box-policy", default="card")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--jitter", type=float, default=0.04, help="fraction of the side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    dataset = read_dataset(args.dataset, args.format, args.split)
    frames = args.repeats * sum(len(s) for s in dataset.sequences)
    with tempfile.TemporaryDirectory() as cache, tqdm(total=frames, unit="frame") as bar:
        tracker = build_tracker(
            args.model,
            backend=args.backend,
            threads=args.threads,
            engine_cache_dir=cache,
            box_policy=args.box_policy,
        )
        spread = measure_spread(
            tracker, dataset, args.repeats, args.jitter, args.seed, on_frame=bar.update
        )
        tracker.close()
    print(
        f"{args.model} ({args.box_policy}) on {dataset.root}, first boxes within "
        f"{args.jitter:.0%} of the target's side:"
    )
    print("\n".join(spread.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
