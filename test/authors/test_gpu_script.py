"""bench/authors_gpu.py: a clear skip without CUDA, and its CPU reference path runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from . import parity_fixtures as fx
from .release_files import write_release

SCRIPT = f"{fx.REPO}/bench/authors_gpu.py"


def run_script(args, timeout=600):
    return subprocess.run(
        [sys.executable, SCRIPT] + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_without_cuda_it_says_so_and_measures_nothing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script measures instead of skipping")
    out = tmp_path / "gpu.json"
    result = run_script(["--out", out])
    assert result.returncode == 0, result.stderr
    assert "skipped: no CUDA device" in result.stderr and "nothing was measured" in result.stderr
    assert result.stdout == ""
    assert json.loads(out.read_text()) == {
        "skipped": "no CUDA device (torch.cuda.is_available() is False)"
    }


def test_the_cpu_reference_runs_on_converted_weights(tmp_path):
    from ros_tracker.zoo.authors.convert import convert_release

    release = write_release(str(tmp_path / "r.pth"), fx.authors_state("hit_tiny"), "stark")
    weights = convert_release("hit_tiny", release, str(tmp_path / "hit_tiny.safetensors")).out
    out = tmp_path / "cpu.json"
    result = run_script([weights, "--precisions", "cpu-fp32", "--frames", 2, "--warmup", 1,
                         "--out", out])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"| {weights} |" in result.stdout
    (row,) = json.loads(out.read_text())["results"]
    assert row["cpu-fp32"]["median_ms"] > 0
    result = run_script(["--precisions", "cuda-fp16"])
    assert result.returncode == 2 and "must start with the reference cpu-fp32" in result.stderr
