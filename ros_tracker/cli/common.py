"""Helpers shared by the subcommands: validated choices with suggestions, JSON output."""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from typing import Any, Callable, Optional, Sequence, Tuple

from ros_tracker.runtime.box_policy import POLICY_FIELDS, parse_box_policy


def choice(name: str, choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse ``type`` accepting one of ``choices``, suggesting the closest on a typo."""

    def parse(value: str) -> str:
        normalised = value.strip().lower()
        if normalised in choices:
            return normalised
        close = difflib.get_close_matches(normalised, list(choices), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise argparse.ArgumentTypeError(
            f"unknown {name} {value!r}{hint} (choose from {', '.join(choices)})"
        )

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout, nothing else."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "torch")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("fp32", "fp16")


def add_inference_arguments(
    parser: argparse.ArgumentParser,
    threads_help: str = "CPU threads",
    engine_cache_default: Optional[str] = None,
) -> None:
    """--backend, --device, --precision, --threads, --engine-cache-dir and --box-policy, as
    every command that runs a model takes them."""
    parser.add_argument("--backend", default="auto", type=choice("backend", BACKEND_CHOICES))
    parser.add_argument("--device", default="auto", type=choice("device", DEVICE_CHOICES))
    parser.add_argument("--precision", default="fp32", type=choice("precision", PRECISION_CHOICES))
    parser.add_argument("--threads", type=positive_int, default=None, help=threads_help)
    parser.add_argument(
        "--engine-cache-dir",
        default=engine_cache_default,
        help="TensorRT engines and ONNX exports, reused across runs",
    )
    parser.add_argument(
        "--box-policy",
        default="card",
        type=_box_policy,
        help="box settings: card (the model card's), paper (the authors'), or "
        f"key=value,... ({', '.join(POLICY_FIELDS)}), optionally after card, or paper,",
    )


def _box_policy(text: str) -> str:
    try:
        parse_box_policy(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parse_box(text: str) -> Tuple[float, float, float, float]:
    """``"x,y,w,h"`` (commas, spaces or both) as four floats; ValueError says what is wrong."""
    fields = [f for f in re.split(r"[,\s]+", text.strip()) if f]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise ValueError(f"--box must be four numbers x,y,w,h, got {text!r}") from None
    if len(values) != 4:
        raise ValueError(f"--box must be four numbers x,y,w,h, got {len(values)} in {text!r}")
    x, y, w, h = values
    return (x, y, w, h)
