from __future__ import annotations

import numpy as np
import pytest
import torch
from runtime_helpers import build_tiny

from ros_tracker.runtime.backends.base import BackendUnavailable, InferenceBackend
from ros_tracker.runtime.backends.torch_backend import TorchBackend


def template_inputs(card, seed: int = 0):
    rng = np.random.default_rng(seed)
    size = card.template_size
    return {
        name: rng.standard_normal((1, 3, size, size)).astype(np.float32)
        for name in card.template_input_names
    }


def search_input(card, seed: int = 1) -> np.ndarray:
    size = card.search_size
    return np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize("family", ["hit", "hcat", "mixformerv2", "abtrack"])
def test_outputs_match_the_network_forward(family: str) -> None:
    network = build_tiny(family)
    card = network.card
    backend = TorchBackend(card, network)
    assert isinstance(backend, InferenceBackend) and backend.name == "torch-cpu"
    templates = template_inputs(card)
    search = search_input(card)
    backend.set_template(templates)
    outputs = backend.run_search(search)
    assert list(outputs) == list(card.output_names)
    with torch.inference_mode():
        tensors = [torch.from_numpy(templates[n]) for n in card.template_input_names]
        reference = network(*tensors, torch.from_numpy(search))
    for name in card.output_names:
        assert outputs[name].dtype == np.float32
        np.testing.assert_allclose(outputs[name], reference[name].numpy(), rtol=1e-4, atol=1e-5)


def test_template_state_does_not_alias_the_callers_buffer() -> None:
    network = build_tiny("hit")
    card = network.card
    backend = TorchBackend(card, network)
    templates = template_inputs(card)
    search = search_input(card)
    backend.set_template(templates)
    before = backend.run_search(search)["corner_logits"].copy()
    for array in templates.values():
        array[...] = 0.0  # the tracker reuses its crop buffers like this
    after = backend.run_search(search)["corner_logits"]
    np.testing.assert_array_equal(before, after)


def test_misuse_is_reported() -> None:
    network = build_tiny("mixformerv2")
    card = network.card
    backend = TorchBackend(card, network)
    with pytest.raises(RuntimeError, match="before set_template"):
        backend.run_search(search_input(card))
    with pytest.raises(ValueError, match="online_template"):
        backend.set_template({"template": template_inputs(card)["template"]})
    backend.set_template(template_inputs(card))
    with pytest.raises(ValueError, match="shape"):
        backend.run_search(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="float32"):
        backend.run_search(search_input(card).astype(np.float64))
    backend.close()
    with pytest.raises(RuntimeError):
        backend.run_search(search_input(card))


def test_invalid_device_and_precision() -> None:
    network = build_tiny("hit")
    with pytest.raises(ValueError, match="device"):
        TorchBackend(network.card, network, device="tpu")
    with pytest.raises(ValueError, match="precision"):
        TorchBackend(network.card, network, precision="int8")
    with pytest.raises(BackendUnavailable, match="fp16"):
        TorchBackend(network.card, network, device="cpu", precision="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_unavailable_is_a_clear_error() -> None:
    network = build_tiny("hit")
    with pytest.raises(BackendUnavailable, match="CUDA is not available"):
        TorchBackend(network.card, network, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision, name", [("fp32", "torch-cuda"), ("fp16", "torch-cuda-fp16")])
def test_cuda_matches_cpu(precision: str, name: str) -> None:
    network = build_tiny("abtrack")
    card = network.card
    cpu = TorchBackend(card, network)
    cpu.set_template(template_inputs(card))
    expected = cpu.run_search(search_input(card))
    gpu = TorchBackend(card, build_tiny("abtrack"), device="cuda", precision=precision)
    assert gpu.name == name
    gpu.set_template(template_inputs(card))
    outputs = gpu.run_search(search_input(card))
    tolerance = 1e-3 if precision == "fp32" else 5e-2
    for key in card.output_names:
        np.testing.assert_allclose(outputs[key], expected[key], rtol=tolerance, atol=tolerance)
