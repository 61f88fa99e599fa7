"""``ros-tracker train --config FILE [key=value ...]`` (also ``python -m training``).

Multi-GPU / multi-node: start one process per GPU with torchrun, e.g.
``torchrun --nproc_per_node=4 -m training --config training/configs/hit_base.yaml``
(add ``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint`` for several machines).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

import yaml

DESCRIPTION = "Train a zoo network from a YAML config (see training/configs/)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=False, help="YAML config file")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. training.lr=1e-4 data.num_workers=4",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "--list-keys", action="store_true", help="list every config key with its default"
    )


def run(args: argparse.Namespace) -> int:
    from training.config import describe_keys, load_config

    if args.list_keys:
        print("\n".join(describe_keys()))
        return 0
    if not args.config:
        raise ValueError("--config FILE is required")
    config = load_config(args.config, args.overrides)
    if args.print_config:
        yaml.safe_dump(config, sys.stdout, sort_keys=False, default_flow_style=None)
        return 0
    from training import distributed
    from training.trainer import Trainer

    info = distributed.init_from_env(config["run"]["distributed_backend"])
    try:
        trainer = Trainer(config, info=info)
        trainer.fit()
        if info.main:
            print(trainer.run_dir, file=sys.stderr)
    finally:
        if info.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=DESCRIPTION)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="[%(levelname)s] %(name)s: %(message)s",
    )
    try:
        return run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        if args.log_level == "DEBUG":
            raise
        print(f"training: error: {error}", file=sys.stderr)
        return 1
