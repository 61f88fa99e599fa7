"""``ros-tracker train --config FILE [key=value ...]``: train a zoo network (source checkout).

The training code is the top-level ``training`` package of the repository, not part of the
installed ``ros_tracker`` package (robots never need it). This module finds it next to the
``ros_tracker`` source folder (or on the Python path) and imports it only when the command
runs; outside a source checkout it says so instead of failing with an import error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from types import ModuleType

_MISSING = (
    "ros-tracker train needs a source checkout of ros_tracker: the 'training' package "
    "next to the 'ros_tracker' folder (found none near {where}). Clone the repository and run "
    "'ros-tracker train' from an editable install, or 'python -m training' in the checkout."
)


def _checkout_root() -> str:
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.dirname(package_dir)


def load_training() -> ModuleType:
    """The ``training.cli`` module of the source checkout (RuntimeError if there is none)."""
    root = _checkout_root()
    if os.path.isfile(os.path.join(root, "training", "cli.py")) and root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module("training.cli")
    except ImportError:
        raise RuntimeError(_MISSING.format(where=root)) from None
    if not hasattr(module, "run"):
        raise RuntimeError(_MISSING.format(where=root))
    return module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training module's own options; outside a source checkout, run() explains."""
    try:
        training_cli = load_training()
    except RuntimeError:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    training_cli.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    training_cli = load_training()
    logger = logging.getLogger("training")
    logger.setLevel(min(logging.INFO, logging.getLogger().getEffectiveLevel()))
    return int(training_cli.run(args) or 0)
