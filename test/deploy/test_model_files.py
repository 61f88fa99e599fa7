"""Resolving the ``model`` parameter: zoo names, safetensors files, ONNX exports, errors."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from ros_tracker.export.onnx import export_onnx
from ros_tracker.runtime.factory import build_tracker
from ros_tracker.runtime.model_files import resolve_model
from ros_tracker.zoo.checkpoints import card_metadata, save_weights
from ros_tracker.zoo.registry import create_model, get_card

from .zoo_configs import tiny_overrides

MODEL = "hit_tiny"


@pytest.fixture
def tiny_weights(tmp_path):
    """A hit_tiny checkpoint in the tiny test configuration, describing itself."""
    overrides = tiny_overrides("hit")
    torch.manual_seed(3)
    network = create_model(MODEL, **overrides).eval()
    metadata = card_metadata(network.card)
    metadata["overrides"] = json.dumps(overrides)
    path = tmp_path / "hit_tiny_small.safetensors"
    save_weights(network, str(path), metadata)
    return path, network


def test_zoo_name_without_weights_warns_and_is_deterministic(caplog):
    source = resolve_model(MODEL)
    assert source.kind == "zoo" and source.card == get_card(MODEL)
    assert not source.trained
    with caplog.at_level(logging.WARNING, logger="ros_tracker.runtime"):
        first = source.build_network()
    assert any(
        "no trained weights for hit_tiny: random initialisation" in r.getMessage()
        for r in caplog.records
    )
    second = resolve_model(MODEL).build_network()
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_zoo_weights_found_in_models_dir(tmp_path, monkeypatch):
    card = get_card(MODEL).replace(weights="hit_tiny_test.safetensors")
    network = create_model(MODEL).eval()
    save_weights(network, str(tmp_path / "hit_tiny_test.safetensors"))
    monkeypatch.setenv("ROS_TRACKER_MODELS", str(tmp_path))
    from ros_tracker.runtime.model_files import ModelSource, find_weights

    assert find_weights(card) == str(tmp_path / "hit_tiny_test.safetensors")
    loaded = ModelSource(card=card, kind="zoo", weights_path=find_weights(card)).build_network()
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_unknown_zoo_name_suggests_close_matches():
    with pytest.raises(KeyError, match="hit_tiny"):
        resolve_model("hit_tinny")


def test_safetensors_with_card_and_overrides(tiny_weights):
    path, network = tiny_weights
    source = resolve_model(str(path))
    assert source.kind == "safetensors" and source.trained
    assert source.card == network.card and source.card.search_size == 128
    loaded = source.build_network()
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_missing_files_are_named(tmp_path):
    for name in ("nothing.safetensors", "nothing.onnx", "folder/nothing"):
        with pytest.raises(FileNotFoundError, match="nothing"):
            resolve_model(str(tmp_path / name))


def test_corrupt_safetensors_is_named(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="broken.safetensors"):
        resolve_model(str(path))


def test_safetensors_without_card_is_explained(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_weights(torch.nn.Linear(2, 2), str(path))
    with pytest.raises(ValueError, match="no 'card' metadata"):
        resolve_model(str(path))


def test_truncated_safetensors_fails_on_load(tiny_weights, tmp_path):
    path, _ = tiny_weights
    data = path.read_bytes()
    broken = tmp_path / "truncated.safetensors"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.safetensors"):
        resolve_model(str(broken)).build_network()


def test_corrupt_onnx_is_named(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "template.onnx").write_bytes(b"not a model")
    (folder / "search.onnx").write_bytes(b"not a model either")
    with pytest.raises(ValueError, match="search.onnx"):
        resolve_model(str(folder))


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported model file"):
        resolve_model(str(path))


def test_onnx_export_folder_runs_with_onnxruntime(tiny_weights, tmp_path):
    _, network = tiny_weights
    export = export_onnx(network, str(tmp_path / "exported"))
    source = resolve_model(export.folder)
    assert source.kind == "onnx" and source.card == network.card
    from ros_tracker.runtime.backends.base import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="no PyTorch network"):
        build_tracker(export.folder, backend="torch")
    tracker = build_tracker(export.search_path, backend="auto", engine_cache_dir=str(tmp_path))
    assert tracker.backend_name == "onnxruntime-cpu"


def test_build_tracker_tracks_with_each_cpu_backend(tiny_weights, tmp_path):
    path, _ = tiny_weights
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = {}
    for backend in ("torch", "onnxruntime"):
        tracker = build_tracker(str(path), backend=backend, engine_cache_dir=str(tmp_path))
        tracker.initialize(image, (100, 80, 60, 50))
        result = tracker.track(image)
        boxes[backend] = result.box
        assert set(result.timings) >= {"preprocess", "inference", "postprocess"}
        tracker.close()
    np.testing.assert_allclose(boxes["torch"], boxes["onnxruntime"], atol=1e-2)


def test_bare_zoo_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    (tmp_path / MODEL).mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model(MODEL).kind == "zoo"
    with pytest.raises(FileNotFoundError, match="template.onnx"):
        resolve_model(os.path.join(".", MODEL))  # the folder, named as a path
