"""Safetensors checkpoints with strict loading and a readable report of what did not match."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, List, Optional

import torch
from torch import nn


class CheckpointMismatch(RuntimeError):
    """Raised when a checkpoint does not fit the network; the message lists every key."""

    def __init__(self, missing: List[str], unexpected: List[str], shapes: List[str]) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.shapes = shapes
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
        super().__init__("checkpoint does not match the network: " + " | ".join(parts))


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Raise CheckpointMismatch unless ``state`` has exactly the model's keys and shapes."""
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)}, network {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        raise CheckpointMismatch(missing, unexpected, shapes)


def load_state_dict_strict(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    check_state_dict(model, state)
    model.load_state_dict(state, strict=True)


def save_weights(model: nn.Module, path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """Write the model's weights as safetensors, atomically (temp file + rename)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_weights(path: str) -> Dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or corrupt file gives an error naming the file."""
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises several types for corrupt files
        raise ValueError(f"cannot read weights file {path}: {error}") from error


def read_metadata(path: str) -> Dict[str, str]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        return dict(handle.metadata() or {})


def load_weights(model: nn.Module, path: str) -> None:
    load_state_dict_strict(model, read_weights(path))


def card_metadata(card) -> Dict[str, str]:
    """Card fields as safetensors metadata (strings), so a weights file describes itself."""
    return {"card": json.dumps(card.to_dict(), sort_keys=True)}
