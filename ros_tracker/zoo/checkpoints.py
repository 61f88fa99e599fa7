"""Safetensors checkpoints with strict loading and a readable report of what did not match."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

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


# BatchNorm's batch counter: absent from older checkpoints, the module keeps its own then.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


def strip_common_prefix(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """``state`` without ``prefix`` when every key carries it (data-parallel checkpoints)."""
    if prefix and state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return state


def load_mapped(
    module: nn.Module,
    state: Dict[str, torch.Tensor],
    map_key: Callable[[str], Optional[str]],
    is_dropped: Callable[[str], bool],
) -> Tuple[Dict[str, str], List[str], List[str]]:
    """Load a checkpoint of another layout into ``module`` through a key map.

    ``map_key`` gives the module's name for a checkpoint key (None: no place for it);
    keys for which ``is_dropped`` holds are parts the module does not have and are left out.
    Every tensor of the module must be filled (batch-norm counters excepted); an unknown key,
    a missing tensor or a shape mismatch raises CheckpointMismatch naming them all.
    Returns (checkpoint key -> module key loaded, dropped checkpoint keys, module keys kept).
    """
    own = module.state_dict()
    loaded: Dict[str, str] = {}
    dropped: List[str] = []
    unexpected: List[str] = []
    shapes: List[str] = []
    updates: Dict[str, torch.Tensor] = {}
    for source_key, tensor in state.items():
        if is_dropped(source_key):
            dropped.append(source_key)
            continue
        target = map_key(source_key)
        if target is None or target not in own:
            unexpected.append(source_key)
            continue
        if tuple(tensor.shape) != tuple(own[target].shape):
            shapes.append(
                f"{source_key} -> {target}: checkpoint {tuple(tensor.shape)}, "
                f"network {tuple(own[target].shape)}"
            )
            continue
        updates[target] = tensor
        loaded[source_key] = target
    missing = sorted(k for k in own if k not in updates and not k.endswith(_OPTIONAL_SUFFIX))
    if missing or unexpected or shapes:
        raise CheckpointMismatch(missing, sorted(unexpected), shapes)
    merged = dict(own)
    merged.update({k: v.to(own[k].dtype) for k, v in updates.items()})
    module.load_state_dict(merged, strict=True)
    kept = sorted(k for k in own if k not in updates)
    return loaded, sorted(dropped), kept
