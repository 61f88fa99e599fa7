"""The ``ros-tracker`` command line (see ros_tracker.cli.main)."""

from __future__ import annotations

from ros_tracker.cli.main import main, register_command

__all__ = ["main", "register_command"]
