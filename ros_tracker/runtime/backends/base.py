"""The interface every inference backend implements (PyTorch, ONNX Runtime, TensorRT).

A backend holds one network split in its two halves (see ros_tracker.zoo.base): the template
half runs in ``set_template`` once per initialisation or template update and its state stays
inside the backend (on the device where possible); ``run_search`` runs every frame.
All arrays are float32 numpy arrays in NCHW, already normalised; outputs are the raw maps
named by the card's ``output_names``.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from ros_tracker.zoo.card import ModelCard


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (library missing, no GPU, build failed); says why."""


class InferenceBackend:
    """Base class of the inference backends."""

    #: short name shown in TrackerStatus.backend, e.g. "onnxruntime-cpu", "tensorrt-fp16"
    name = "base"

    def __init__(self, card: ModelCard) -> None:
        self.card = card

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        """Encode the template inputs (keyed by card.template_inputs) and keep the state."""
        raise NotImplementedError

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the per-frame half on a (1, 3, S, S) search crop; outputs keyed by name."""
        raise NotImplementedError

    def close(self) -> None:
        """Release device memory and sessions."""
