"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else.

A checkpoint is a directory ``<run>/checkpoints/step_<global step>/`` holding

* ``model.safetensors``: the network's weights (the zoo's safetensors layout, card metadata);
* ``state.safetensors``: the optimizer's per-parameter tensors (``optimizer.<i>.<name>``) and
  the random generator states (``rng.torch``, ``rng.cuda.<device>``);
* ``trainer.json``: counters, the optimizer's parameter groups and non-tensor state, the AMP
  scaler, the best validation result, and a digest of the config.

It is written into a temporary directory that is renamed into place, and
``<run>/checkpoints/latest.json`` (replaced atomically) points at the newest complete one, so an
interruption never leaves a half-written checkpoint behind the pointer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import torch
from safetensors.torch import load_file, save_file

from ros_tracker.zoo.checkpoints import card_metadata, read_weights, save_weights

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
TRAINER_FILE = "trainer.json"
LATEST = "latest.json"


def write_json_atomic(path: str, data: Any) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def split_optimizer_state(state: Dict[str, Any]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """optimizer.state_dict() -> (tensors for safetensors, JSON-able rest)."""
    tensors: Dict[str, torch.Tensor] = {}
    scalars: Dict[str, Dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[name] = _jsonable(value)
    return tensors, {"param_groups": _jsonable(state["param_groups"]), "scalars": scalars}


def join_optimizer_state(tensors: Dict[str, torch.Tensor], rest: Dict[str, Any]) -> Dict[str, Any]:
    state: Dict[int, Dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in rest.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for group in rest["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def rng_tensors() -> Dict[str, torch.Tensor]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = value
    return tensors


def restore_rng(tensors: Dict[str, torch.Tensor]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


def save_checkpoint(
    directory: str,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: Dict[str, Any],
    keep: int = 2,
) -> str:
    """Write one checkpoint atomically; returns its path. Keeps the newest ``keep``."""
    os.makedirs(directory, exist_ok=True)
    name = f"step_{int(trainer_state['global_step']):08d}"
    final = os.path.join(directory, name)
    tmp = tempfile.mkdtemp(dir=directory, prefix=name + ".tmp")
    try:
        save_weights(network, os.path.join(tmp, MODEL_FILE), card_metadata(network.card))
        tensors, rest = split_optimizer_state(optimizer.state_dict())
        tensors.update(rng_tensors())
        save_file(tensors, os.path.join(tmp, STATE_FILE))
        write_json_atomic(os.path.join(tmp, TRAINER_FILE), dict(trainer_state, optimizer=rest))
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    write_json_atomic(os.path.join(directory, LATEST), {"checkpoint": name})
    _prune(directory, keep, name)
    return final


def _prune(directory: str, keep: int, newest: str) -> None:
    names = sorted(n for n in os.listdir(directory) if n.startswith("step_") and ".tmp" not in n)
    for name in names[: max(len(names) - max(keep, 1), 0)]:
        if name != newest:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def latest_checkpoint(directory: str) -> Optional[str]:
    path = os.path.join(directory, LATEST)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        name = json.load(handle)["checkpoint"]
    full = os.path.join(directory, name)
    return full if os.path.isdir(full) else None


def load_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any], Dict[str, Any]]:
    """(model weights, state tensors, trainer json) of a checkpoint directory."""
    for filename in (MODEL_FILE, STATE_FILE, TRAINER_FILE):
        if not os.path.isfile(os.path.join(path, filename)):
            raise FileNotFoundError(f"checkpoint {path} lacks {filename}")
    with open(os.path.join(path, TRAINER_FILE), encoding="utf-8") as handle:
        trainer = json.load(handle)
    return (
        read_weights(os.path.join(path, MODEL_FILE)),
        load_file(os.path.join(path, STATE_FILE)),
        trainer,
    )


def list_checkpoints(directory: str) -> List[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(
        os.path.join(directory, n)
        for n in os.listdir(directory)
        if n.startswith("step_") and ".tmp" not in n
    )
