"""ONNX Runtime backend against the PyTorch backend, and automatic backend selection."""

from __future__ import annotations

import logging
import os
import sys

import numpy as np
import pytest

from ros_tracker.runtime.backends.base import BackendUnavailable
from ros_tracker.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, plan_providers
from ros_tracker.runtime.backends.select import create_backend
from ros_tracker.runtime.backends.torch_backend import TorchBackend
from ros_tracker.runtime.model_files import source_from_network


def _inputs(card, seed=0):
    rng = np.random.default_rng(seed)
    templates = {
        name: rng.standard_normal((1, 3, card.template_size, card.template_size), np.float32)
        for name in card.template_input_names
    }
    searches = [
        rng.standard_normal((1, 3, card.search_size, card.search_size), np.float32)
        for _ in range(3)
    ]
    return templates, searches


def _outputs_close(reference, other, card):
    templates, searches = _inputs(card)
    reference.set_template(templates)
    other.set_template(templates)
    for search in searches:
        expected = reference.run_search(search)
        actual = other.run_search(search)
        assert set(actual) == set(card.output_names)
        for name in card.output_names:
            assert actual[name].dtype == np.float32
            np.testing.assert_allclose(actual[name], expected[name], atol=1e-4, rtol=0)


def test_onnxruntime_backend_equals_torch_backend(tiny_network, tmp_path):
    source = source_from_network(tiny_network)
    export = source.onnx_export(str(tmp_path))
    ort_backend = OnnxRuntimeBackend(tiny_network.card, export, device="cpu", threads=1)
    assert ort_backend.name == "onnxruntime-cpu"
    torch_backend = TorchBackend(tiny_network.card, tiny_network, device="cpu")
    _outputs_close(torch_backend, ort_backend, tiny_network.card)


def test_onnxruntime_two_templates_and_template_update(tiny_network_two_templates, tmp_path):
    network = tiny_network_two_templates
    export = source_from_network(network).onnx_export(str(tmp_path))
    ort_backend = OnnxRuntimeBackend(network.card, export, device="cpu", threads=1)
    torch_backend = TorchBackend(network.card, network, device="cpu")
    _outputs_close(torch_backend, ort_backend, network.card)
    # A new template replaces the state kept by the backend.
    templates, searches = _inputs(network.card, seed=5)
    before = ort_backend.run_search(searches[0])["corner_logits"]
    ort_backend.set_template(templates)
    torch_backend.set_template(templates)
    after = ort_backend.run_search(searches[0])["corner_logits"]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(
        after, torch_backend.run_search(searches[0])["corner_logits"], atol=1e-4
    )


def test_run_search_before_template_is_an_error(tiny_network, tmp_path):
    export = source_from_network(tiny_network).onnx_export(str(tmp_path))
    backend = OnnxRuntimeBackend(tiny_network.card, export, device="cpu")
    with pytest.raises(RuntimeError, match="set_template"):
        backend.run_search(np.zeros((1, 3, 64, 64), np.float32))


def test_provider_plan_order_and_device_filter():
    everything = ["tensorrt", "cuda", "cpu"]
    assert plan_providers("auto", everything) == ["tensorrt", "cuda", "cpu"]
    assert plan_providers("cuda", everything) == ["tensorrt", "cuda"]
    assert plan_providers("cpu", everything) == ["cpu"]
    assert plan_providers("cuda", ["cpu"]) == []
    assert plan_providers("auto", ["cpu"]) == ["cpu"]
    with pytest.raises(ValueError):
        plan_providers("gpu", everything)


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``import tensorrt`` fail, as on a machine without it."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def test_auto_falls_back_to_onnxruntime_with_logged_reason(
    tiny_network, tmp_path, no_tensorrt, caplog
):
    with caplog.at_level(logging.INFO, logger="ros_tracker.runtime"):
        backend = create_backend(
            tiny_network.card, tiny_network, backend="auto", engine_cache_dir=str(tmp_path)
        )
    assert backend.name.startswith("onnxruntime-")
    skipped = [r for r in caplog.records if "backend tensorrt unavailable" in r.getMessage()]
    assert skipped and skipped[0].name == "ros_tracker.runtime"
    assert "tensorrt" in skipped[0].getMessage() and "trying onnxruntime" in skipped[0].getMessage()


def test_auto_falls_back_to_torch_when_onnxruntime_is_missing(
    tiny_network, tmp_path, no_tensorrt, monkeypatch, caplog
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level(logging.WARNING, logger="ros_tracker.runtime"):
        backend = create_backend(tiny_network.card, tiny_network, engine_cache_dir=str(tmp_path))
    assert backend.name == "torch-cpu"
    assert any("backend onnxruntime unavailable" in r.getMessage() for r in caplog.records)


def test_explicit_tensorrt_raises_backend_unavailable(tiny_network, tmp_path, no_tensorrt):
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        create_backend(tiny_network.card, tiny_network, backend="tensorrt", device="cuda")


def test_explicit_tensorrt_on_cpu_device_is_refused(tiny_network):
    with pytest.raises(BackendUnavailable, match="cpu"):
        create_backend(tiny_network.card, tiny_network, backend="tensorrt", device="cpu")


def test_explicit_cuda_without_gpu_providers_is_refused(tiny_network, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    with pytest.raises(BackendUnavailable, match="onnxruntime"):
        create_backend(
            tiny_network.card,
            tiny_network,
            backend="onnxruntime",
            device="cuda",
            engine_cache_dir=str(tmp_path),
        )


def test_invalid_choices_are_value_errors(tiny_network):
    with pytest.raises(ValueError, match="backend"):
        create_backend(tiny_network.card, tiny_network, backend="tensorflow")
    with pytest.raises(ValueError, match="precision"):
        create_backend(tiny_network.card, tiny_network, precision="int8")


def test_on_demand_export_is_cached(tiny_network, tmp_path):
    source = source_from_network(tiny_network)
    first = source.onnx_export(str(tmp_path))
    written = os.stat(first.search_path).st_mtime_ns
    again = source_from_network(tiny_network).onnx_export(str(tmp_path))
    assert again.search_path == first.search_path
    assert os.stat(again.search_path).st_mtime_ns == written  # reused, not re-exported
    folders = list((tmp_path / "onnx").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("tiny_test_tracker-")


def test_failing_tensorrt_provider_is_dropped(tiny_network, tmp_path, monkeypatch, caplog):
    import onnxruntime

    export = source_from_network(tiny_network).onnx_export(str(tmp_path))
    real_session = onnxruntime.InferenceSession
    seen = []

    def session(path, options, providers):
        names = [p[0] for p in providers]
        seen.append(names)
        if "TensorrtExecutionProvider" in names:
            raise RuntimeError("unknown provider option trt_timing_cache_path")
        return real_session(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    with caplog.at_level(logging.WARNING, logger="ros_tracker.runtime"):
        backend = OnnxRuntimeBackend(
            tiny_network.card,
            export,
            device="auto",
            providers=["tensorrt", "cpu"],
            engine_cache_dir=str(tmp_path),
        )
    assert backend.name == "onnxruntime-cpu"
    # Dropped once, for the first graph; the second session is opened without it.
    assert seen == [
        ["TensorrtExecutionProvider", "CPUExecutionProvider"],
        ["CPUExecutionProvider"],
        ["CPUExecutionProvider"],
    ]
    assert any("TensorRT provider failed" in r.getMessage() for r in caplog.records)
