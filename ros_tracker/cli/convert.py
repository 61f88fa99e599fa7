"""``ros-tracker convert MODEL CHECKPOINT [--out FILE.safetensors]``.

Turns a checkpoint exactly as the paper's authors release it (HiT and MixFormerV2
``*.pth.tar``, HCAT ``*.pth``) into zoo weights with the model card in the file. The file is
read without executing any of the code it names (see ros_tracker.zoo.authors.reader); a
checkpoint whose tensors do not all fit the network is refused with every key named, and
nothing is written. Prints the written path on stdout, a summary on stderr.
"""

from __future__ import annotations

import argparse
import sys

from ros_tracker.cli.common import choice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ros_tracker.zoo.authors.convert import supported_models

    parser.add_argument(
        "model", type=choice("model", supported_models()), help=", ".join(supported_models())
    )
    parser.add_argument("checkpoint", help="the authors' release file (.pth / .pth.tar)")
    parser.add_argument("--out", help="output .safetensors file (default: ./MODEL.safetensors)")


def run(args: argparse.Namespace) -> int:
    from ros_tracker.zoo.authors.convert import convert_release

    result = convert_release(args.model, args.checkpoint, args.out)
    print(result.out)
    print(f"converted {args.model}: {result.summary()}", file=sys.stderr)
    print(f"forms: {result.card.extra.get('forms', '')}", file=sys.stderr)
    print(f"licence: {result.card.weights_license}", file=sys.stderr)
    return 0
