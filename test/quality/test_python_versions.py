"""What a robot imports must run on Python 3.8 (JetPack 5) and 3.10 (Humble)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Everything under ros_tracker/ is runtime except the modules that only build or score things
# off the robot; those may use newer Python.
RUNTIME_PATHS = ["ros_tracker", "launch"]
TRAINING_ONLY = ["ros_tracker/cli/train.py"]


def _vermin(paths, target):
    command = [
        os.path.join(os.path.dirname(sys.executable), "vermin"),
        "--no-tips",
        "--violations",
        "--eval-annotations",
        "--target=" + target,
        *paths,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_runtime_needs_at_most_python_3_8():
    excluded = [f"--exclude-regex={p}" for p in TRAINING_ONLY]
    result = _vermin(RUNTIME_PATHS + excluded, "3.8-")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_catches_newer_syntax(tmp_path):
    newer = tmp_path / "newer.py"
    newer.write_text("def f(x: int | None):\n    match x:\n        case _:\n            return x\n")
    result = _vermin([str(newer)], "3.8-")
    assert result.returncode != 0
    assert "3.10" in result.stdout, result.stdout + result.stderr


@pytest.mark.skipif(not os.path.exists("/root/.pyenv/versions/3.8.18/bin/python"), reason="no 3.8")
def test_runtime_sources_compile_under_python_3_8():
    python38 = "/root/.pyenv/versions/3.8.18/bin/python"
    result = subprocess.run(
        [python38, "-m", "compileall", "-q", "-x", "ros_tracker/cli/train.py", "ros_tracker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
