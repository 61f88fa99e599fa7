"""Every registered zoo model exports, checks, and runs the same in ONNX Runtime as in torch.

Tiny configurations keep this fast; one full-size model is exported as well.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from ros_tracker.export.onnx import (
    export_onnx,
    graph_opset,
    list_inputs,
    op_counts,
    read_card,
    state_names,
    verify_export,
)
from ros_tracker.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from ros_tracker.runtime.backends.torch_backend import TorchBackend
from ros_tracker.zoo.registry import create_model, get_card, list_models

from .zoo_configs import tiny_overrides

FULL_SIZE_MODEL = "abtrack_vit_tiny"


def _tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **tiny_overrides(get_card(name).family)).eval()


def _check_export(network: nn.Module, folder: str):
    card = network.card
    export = export_onnx(network, folder)
    for path in (export.template_path, export.search_path):
        onnx.checker.check_model(path)
        assert graph_opset(path) >= 17
        assert read_card(path) == card
    assert list_inputs(export.template_path) == list(card.template_input_names)
    assert list_inputs(export.search_path) == list(state_names(card)) + ["search"]
    outputs = [o.name for o in onnx.load(export.search_path).graph.output]
    assert outputs == list(card.output_names)
    has_layer_norm = any(isinstance(m, nn.LayerNorm) for m in network.modules())
    if has_layer_norm:
        assert op_counts(export.search_path).get("LayerNormalization", 0) > 0
    report = verify_export(network, export, trials=1)
    assert report.max_abs_error <= 1e-4, report.summary()
    return export


@pytest.mark.parametrize("name", list_models())
def test_tiny_zoo_model_exports_and_matches_pytorch(name, tmp_path):
    _check_export(_tiny(name), str(tmp_path / name))


@pytest.mark.parametrize("name", list_models())
def test_onnxruntime_backend_equals_torch_backend(name, tmp_path):
    network = _tiny(name)
    card = network.card
    export = export_onnx(network, str(tmp_path / name))
    ort_backend = OnnxRuntimeBackend(card, export, device="cpu", threads=1)
    torch_backend = TorchBackend(card, network, device="cpu")
    rng = np.random.default_rng(1)
    templates = {
        n: rng.standard_normal((1, 3, card.template_size, card.template_size), np.float32)
        for n in card.template_input_names
    }
    ort_backend.set_template(templates)
    torch_backend.set_template(templates)
    for _ in range(2):
        search = rng.standard_normal((1, 3, card.search_size, card.search_size), np.float32)
        expected = torch_backend.run_search(search)
        actual = ort_backend.run_search(search)
        for output in card.output_names:
            np.testing.assert_allclose(actual[output], expected[output], atol=1e-4, rtol=0)


def test_full_size_model_exports_and_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    network = create_model(FULL_SIZE_MODEL).eval()
    assert network.card == get_card(FULL_SIZE_MODEL)
    _check_export(network, str(tmp_path / FULL_SIZE_MODEL))
