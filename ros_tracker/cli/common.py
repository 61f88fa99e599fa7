"""Helpers shared by the subcommands: validated choices with suggestions, JSON output."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from typing import Any, Callable, Sequence


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
