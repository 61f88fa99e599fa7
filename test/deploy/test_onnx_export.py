"""ONNX export of the test network: files, checks, metadata and parity with PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from ros_tracker.export.metadata import CARD_KEY, card_from_json
from ros_tracker.export.onnx import (
    ExportError,
    export_onnx,
    find_export,
    graph_opset,
    list_inputs,
    op_counts,
    read_card,
    read_metadata,
    state_names,
    verify_export,
)


def test_export_writes_checked_pair_with_metadata(tiny_network, tmp_path):
    export = export_onnx(tiny_network, str(tmp_path / "tiny"))
    card = tiny_network.card
    for path in (export.template_path, export.search_path):
        onnx.checker.check_model(path)
        assert graph_opset(path) >= 17
    # LayerNorm stays one node in both halves; BatchNorm is folded into the convolution.
    assert op_counts(export.search_path)["LayerNormalization"] == 1
    assert op_counts(export.template_path)["LayerNormalization"] == 1
    assert "BatchNormalization" not in op_counts(export.search_path)

    assert list_inputs(export.template_path) == ["template"]
    assert list_inputs(export.search_path) == ["template_state", "search"]
    model = onnx.load(export.search_path)
    assert [o.name for o in model.graph.output] == ["corner_logits"]
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 2, 8, 8]  # static shapes

    metadata = read_metadata(export.search_path)
    assert metadata["ros_tracker.model"] == "tiny_test_tracker"
    assert metadata["ros_tracker.graph"] == "search"
    assert metadata["ros_tracker.search_size"] == "64"
    assert json.loads(metadata["ros_tracker.mean"]) == pytest.approx(list(card.mean))
    assert card_from_json(metadata[CARD_KEY]) == card
    assert read_card(export.template_path) == card


def test_state_names_avoid_input_clash(tiny_network):
    assert state_names(tiny_network.card) == ("template_state",)
    card = tiny_network.card.replace(template_state_names=("features", "pos"))
    assert state_names(card) == ("features", "pos")


def test_verify_matches_pytorch_within_fp32_tolerance(tiny_network, tmp_path):
    export = export_onnx(tiny_network, str(tmp_path / "tiny"))
    report = verify_export(tiny_network, export, trials=2)
    assert set(report.errors) == {"template_state", "corner_logits"}
    assert report.ok, report.summary()
    assert report.max_abs_error <= 1e-4


def test_verify_detects_a_graph_that_differs(tiny_network, tmp_path):
    export = export_onnx(tiny_network, str(tmp_path / "tiny"))
    with __import__("torch").no_grad():
        tiny_network.head.bias.add_(0.5)  # the PyTorch side changes, the graph does not
    report = verify_export(tiny_network, export, trials=1)
    assert not report.ok
    assert report.errors["corner_logits"] == pytest.approx(0.5, abs=1e-3)


def test_two_template_inputs(tiny_network_two_templates, tmp_path):
    export = export_onnx(tiny_network_two_templates, str(tmp_path / "two"))
    assert list_inputs(export.template_path) == ["template", "online_template"]
    assert verify_export(tiny_network_two_templates, export, trials=1).ok


def test_find_export_accepts_folder_or_either_file(tiny_network, tmp_path):
    export = export_onnx(tiny_network, str(tmp_path / "tiny"))
    for path in (export.folder, export.template_path, export.search_path):
        found = find_export(path)
        assert found.search_path == export.search_path
        assert found.card == tiny_network.card


def test_find_export_names_the_missing_file(tiny_network, tmp_path):
    export = export_onnx(tiny_network, str(tmp_path / "tiny"))
    (tmp_path / "tiny" / "template.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="template.onnx"):
        find_export(export.search_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_export(str(tmp_path / "nowhere" / "search.onnx"))


def test_corrupt_onnx_is_reported_with_its_path(tmp_path):
    path = tmp_path / "search.onnx"
    path.write_bytes(b"\x08\x07garbage that is no protobuf" * 3)
    with pytest.raises(ValueError, match="search.onnx"):
        read_card(str(path))


def test_opset_below_17_is_refused(tiny_network, tmp_path):
    with pytest.raises(ExportError, match="opset 13"):
        export_onnx(tiny_network, str(tmp_path / "x"), opset=13)
    assert not (tmp_path / "x").exists()


def test_state_count_mismatch_is_reported(tiny_network, tmp_path):
    tiny_network.card = tiny_network.card.replace(template_state_names=("a", "b"))
    with pytest.raises(ExportError, match="returned 1 tensors"):
        export_onnx(tiny_network, str(tmp_path / "x"))


def test_onnxruntime_outputs_are_float32(tiny_network, tmp_path):
    import onnxruntime

    export = export_onnx(tiny_network, str(tmp_path / "tiny"))
    session = onnxruntime.InferenceSession(export.search_path, providers=["CPUExecutionProvider"])
    feeds = {
        "template_state": np.zeros((1, 16, 16), np.float32),
        "search": np.zeros((1, 3, 64, 64), np.float32),
    }
    (out,) = session.run(None, feeds)
    assert out.dtype == np.float32 and out.shape == (1, 2, 8, 8)


@pytest.fixture
def legacy_exporter_removed(monkeypatch):
    """torch.onnx.export as in a torch whose TorchScript-based exporter is gone."""
    import functools

    import torch

    real = torch.onnx.export

    @functools.wraps(real)
    def export(*args, **kwargs):
        if kwargs.get("dynamo") is False:
            raise RuntimeError("the TorchScript-based exporter was removed")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)


def test_without_legacy_exporter_or_onnxscript_the_error_says_what_to_install(
    tiny_network, tmp_path, legacy_exporter_removed, monkeypatch
):
    import sys

    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ExportError, match="pip install onnxscript"):
        export_onnx(tiny_network, str(tmp_path / "x"))


def test_torch_export_based_fallback(tiny_network, tmp_path, legacy_exporter_removed):
    pytest.importorskip("onnxscript", reason="the torch.export-based exporter needs onnxscript")
    export = export_onnx(tiny_network, str(tmp_path / "dynamo"))
    assert graph_opset(export.search_path) >= 18  # that exporter's floor
    assert read_metadata(export.search_path)["ros_tracker.opset"] == "18"
    assert op_counts(export.search_path).get("LayerNormalization") == 1
    assert verify_export(tiny_network, export).ok
