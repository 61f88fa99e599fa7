"""The shipped ONNX pair is used as installed, and the ONNX Runtime path needs no PyTorch."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from ros_tracker.runtime import model_files
from ros_tracker.runtime.factory import build_tracker
from ros_tracker.runtime.model_files import installed_export, resolve_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "models")
DEFAULT = "hcat_mobilenetv2"

pytestmark = pytest.mark.skipif(
    not os.path.isdir(os.path.join(MODELS, DEFAULT)), reason="no shipped ONNX pair here"
)


def test_zoo_name_uses_the_installed_graphs_and_exports_nothing(tmp_path):
    source = resolve_model(DEFAULT)
    assert source.kind == "zoo" and source.export is not None
    shipped = os.path.join(MODELS, DEFAULT, "search.onnx")  # or the development install's link
    assert os.path.realpath(source.export.search_path) == os.path.realpath(shipped)
    weights = os.path.join(MODELS, DEFAULT + ".safetensors")
    assert os.path.realpath(source.weights_path) == os.path.realpath(weights)
    cache = tmp_path / "cache"
    tracker = build_tracker(DEFAULT, backend="onnxruntime", engine_cache_dir=str(cache))
    try:
        from ros_tracker.sources.synthetic import SyntheticScene

        frames = list(SyntheticScene(width=320, height=240, frames=3, seed=2))
        tracker.initialize(frames[0].image, frames[0].box)
        assert 0.0 <= tracker.track(frames[1].image).score <= 1.0
    finally:
        tracker.close()
    assert not (cache / "onnx").exists(), "a shipped model was exported again"


def test_graphs_exported_from_other_weights_are_not_used(tmp_path, monkeypatch, caplog):
    models = tmp_path / "models"
    shutil.copytree(os.path.join(MODELS, DEFAULT), models / DEFAULT)
    weights = models / (DEFAULT + ".safetensors")
    data = bytearray(open(os.path.join(MODELS, DEFAULT + ".safetensors"), "rb").read())
    data[-1] ^= 0xFF  # other weights (one tensor byte differs)
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(model_files, "models_dirs", lambda: [str(models)])
    with caplog.at_level(logging.INFO, logger="ros_tracker.runtime"):
        assert installed_export(DEFAULT) is None
    assert "exported from other weights" in caplog.text
    # Without the weights file the graphs do not count as the zoo model's either.
    weights.unlink()
    assert installed_export(DEFAULT) is None


NO_TORCH = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # "import torch" now raises ImportError, as on a robot without it
    from ros_tracker.runtime.factory import build_tracker
    from ros_tracker.sources.synthetic import SyntheticScene

    tracker = build_tracker("hcat_mobilenetv2", backend="auto", engine_cache_dir=sys.argv[1])
    frames = list(SyntheticScene(width=320, height=240, frames=4, seed=5))
    tracker.initialize(frames[0].image, frames[0].box)
    scores = [tracker.track(frame.image).score for frame in frames[1:]]
    assert sys.modules["torch"] is None
    print("backend", tracker.backend_name, "frames", len(scores))
    try:
        build_tracker("hcat_mobilenetv2", backend="torch")
    except Exception as error:
        print("torch backend:", error)
    """
)


def test_the_shipped_default_runs_on_onnx_runtime_without_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "backend onnxruntime-cpu frames 3" in result.stdout, result.stdout
    assert "torch backend needs PyTorch, which is not installed" in result.stdout, result.stdout
