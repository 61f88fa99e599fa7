"""PyTorch inference backend: runs a zoo network's two halves directly.

The template state returned by ``encode_template`` stays on the device between frames; only
the search crop goes in and the raw outputs come out each frame. FP16 uses autocast (matmuls
and convolutions in half, LayerNorm and softmax kept in float32) and is CUDA only.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch

from ros_tracker.runtime.backends.base import BackendUnavailable, InferenceBackend
from ros_tracker.zoo.card import ModelCard

_DEVICES = ("cpu", "cuda")
_PRECISIONS = ("fp32", "fp16")


class TorchBackend(InferenceBackend):
    """``TorchBackend(card, network, device="cpu"|"cuda", precision="fp32"|"fp16")``."""

    def __init__(
        self,
        card: ModelCard,
        network: torch.nn.Module,
        device: str = "cpu",
        precision: str = "fp32",
    ) -> None:
        super().__init__(card)
        if device not in _DEVICES:
            raise ValueError(f"device must be one of {_DEVICES}, got {device!r}")
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(
                "torch backend: device 'cuda' requested but CUDA is not available"
            )
        if precision == "fp16" and device != "cuda":
            raise BackendUnavailable("torch backend: fp16 needs device 'cuda' (CPU runs fp32 only)")
        self.device = torch.device(device)
        self.precision = precision
        self.name = (
            "torch-cpu"
            if device == "cpu"
            else ("torch-cuda-fp16" if precision == "fp16" else "torch-cuda")
        )
        self.network = network.eval().to(self.device)
        self._state: Optional[Tuple[torch.Tensor, ...]] = None

    @contextmanager
    def _inference(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.precision == "fp16":
                # Not exercised by the CPU-only test suite.
                with torch.autocast(device_type="cuda", dtype=torch.float16):
                    yield
            else:
                yield

    def _to_device(self, array: np.ndarray, expected: Tuple[int, ...], what: str) -> torch.Tensor:
        if not isinstance(array, np.ndarray) or array.shape != expected:
            shape = getattr(array, "shape", None)
            raise ValueError(f"{what} must be a numpy array of shape {expected}, got {shape}")
        if array.dtype != np.float32:
            raise ValueError(f"{what} must be float32, got {array.dtype}")
        # Always a copy: callers reuse their input buffers, and a network may keep an input
        # tensor as part of its state (a CPU tensor from_numpy would alias the buffer).
        # On CUDA the host-to-device transfer is that copy (synchronous: pageable memory).
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.to(self.device, copy=True)

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        names = self.card.template_inputs
        missing = [n for n in names if n not in templates]
        if missing:
            raise ValueError(f"set_template: missing template input(s) {missing}")
        inputs = [
            self._to_device(templates[n], self.card.template_input_shape(n), n) for n in names
        ]
        with self._inference():
            state = self.network.encode_template(*inputs)
        self._state = tuple(state)

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        if self._state is None:
            raise RuntimeError("run_search called before set_template")
        size = self.card.search_size
        tensor = self._to_device(search, (1, 3, size, size), "search")
        with self._inference():
            outputs = self.network.track_search(*self._state, tensor)
        if len(outputs) != len(self.card.output_names):
            raise RuntimeError(
                f"network returned {len(outputs)} outputs, card names {self.card.output_names}"
            )
        # .float() undoes autocast's half outputs; .cpu() synchronises a CUDA stream.
        return {
            name: output.float().cpu().numpy()
            for name, output in zip(self.card.output_names, outputs)
        }

    def close(self) -> None:
        self._state = None
        if self.device.type == "cuda":  # untested here (no GPU in the test suite)
            torch.cuda.empty_cache()
