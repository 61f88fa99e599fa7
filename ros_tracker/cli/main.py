"""``ros-tracker``: one entry point, one module per subcommand, imported only when used.

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``; adding one
is a single ``register_command`` line below. Only the chosen module is imported, so
``ros-tracker models`` never loads ONNX Runtime and ``ros-tracker run`` never loads
TensorRT. Output meant for programs (``--json``) goes to stdout alone; logs and progress go
to stderr.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
from typing import Dict, List, NamedTuple, Optional


class Command(NamedTuple):
    module: str
    summary: str


COMMANDS: Dict[str, Command] = {}


def register_command(name: str, module: str, summary: str) -> None:
    """Make ``ros-tracker <name>`` run ``<module>.run(args)``."""
    COMMANDS[name] = Command(module, summary)


register_command("models", "ros_tracker.cli.models", "list the model zoo")
register_command("export", "ros_tracker.cli.export", "export a model to ONNX or a TensorRT engine")
register_command("bench", "ros_tracker.cli.bench", "per-stage latency on a 640x480 image")
register_command("track", "ros_tracker.cli.track", "track a video, sequence or camera offline")
register_command("run", "ros_tracker.cli.run", "video_source and tracker nodes in one process")
register_command("eval", "ros_tracker.cli.eval", "one-pass evaluation on a benchmark folder")
register_command(
    "eval-build-composite", "ros_tracker.cli.eval_build_composite", "build the composite test set"
)
register_command("train", "ros_tracker.cli.train", "train a zoo network (source checkout)")
register_command(
    "convert", "ros_tracker.cli.convert", "the authors' released checkpoint -> zoo weights"
)

# Errors a user can fix (bad name, missing file, unavailable backend): one line, no traceback.
_USER_ERRORS = (ValueError, KeyError, FileNotFoundError, RuntimeError)


def _parser(selected: Optional[str]) -> argparse.ArgumentParser:
    from ros_tracker import __version__

    parser = argparse.ArgumentParser(
        prog="ros-tracker",
        description="Single-object tracking with efficient transformer trackers.",
    )
    parser.add_argument("--version", action="version", version=f"ros-tracker {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level on stderr (default WARNING)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.summary, description=command.summary)
        if name == selected:
            importlib.import_module(command.module).add_arguments(sub)
    return parser


def _selected_command(argv: List[str]) -> Optional[str]:
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            continue
        if arg == "--log-level":
            skip_value = True
            continue
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = _selected_command(argv)
    if selected is not None and selected not in COMMANDS:
        close = difflib.get_close_matches(selected, list(COMMANDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(
            f"ros-tracker: unknown command {selected!r}.{hint} Commands: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    args = _parser(selected).parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="[%(levelname)s] %(name)s: %(message)s",
    )
    module = importlib.import_module(COMMANDS[args.command].module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except _USER_ERRORS as error:
        if args.log_level == "DEBUG":
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"ros-tracker {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
