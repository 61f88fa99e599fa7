"""A checkpoint file exactly as the authors release it -> its state dict, read safely.

Release formats handled:

* STARK-style trainers (HiT, MixFormerV2): ``torch.save({'net': state_dict, 'epoch', ...,
  'settings': lib.train.admin.settings.Settings, 'stats': ...})``, usually ``*.pth.tar``;
* pytracking-style trainers (HCAT): the same keys plus ``'constructor'``, an
  ``ltr.admin.model_constructor.NetConstructor`` naming the network builder;
* a bare state dict (``torch.save(model.state_dict())``), optionally under ``'model'`` or
  ``'state_dict'`` and with DataParallel's ``module.`` prefix;
* a safetensors file holding the state dict in the authors' key layout.

``torch.load(weights_only=True)`` is tried first; it refuses the trainers' pickled classes,
and then :mod:`~ros_tracker.zoo.authors.unpickler` reads the archive with inert placeholders
for them. Nothing in the file is ever imported or executed (``weights_only=False`` is never
used).
"""

from __future__ import annotations

import collections
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, List

import torch

from ros_tracker.zoo.authors.unpickler import UnsafeCheckpoint, load_restricted

# Where the trainers put the state dict, in the order tried.
STATE_KEYS = ("net", "model", "state_dict")
DATA_PARALLEL_PREFIX = "module."


@dataclass
class ReleaseCheckpoint:
    """The state dict of a release file and how it was read."""

    path: str
    state: Dict[str, torch.Tensor]
    reader: str  # "weights_only", "restricted" or "safetensors"
    top_level_keys: List[str] = field(default_factory=list)
    placeholders: List[str] = field(default_factory=list)  # classes stood in, never imported
    epoch: Any = None


def _torch_load_weights_only(path: str) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _state_of(obj: Any, path: str) -> Dict[str, torch.Tensor]:
    container = obj
    if isinstance(obj, dict):
        for key in STATE_KEYS:
            if key in obj and isinstance(obj[key], dict):
                container = obj[key]
                break
    if not isinstance(container, dict) or not container:
        raise ValueError(f"{path} holds no state dict (looked under {', '.join(STATE_KEYS)})")
    not_tensors = sorted(str(k) for k, v in container.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ValueError(
            f"{path}: the state dict has entries that are not tensors: {', '.join(not_tensors)}"
        )
    state = collections.OrderedDict((str(k), v) for k, v in container.items())
    if all(k.startswith(DATA_PARALLEL_PREFIX) for k in state):
        state = collections.OrderedDict(
            (k[len(DATA_PARALLEL_PREFIX) :], v) for k, v in state.items()
        )
    return state


def read_release_checkpoint(path: str) -> ReleaseCheckpoint:
    """Read ``path`` (a release .pth / .pth.tar, or .safetensors) without executing code."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        from ros_tracker.zoo.checkpoints import read_weights

        return ReleaseCheckpoint(path, collections.OrderedDict(read_weights(path)), "safetensors")
    placeholders: List[str] = []
    try:
        obj = _torch_load_weights_only(path)
        reader = "weights_only"
    except pickle.UnpicklingError:
        # Refused: the file pickles classes other than tensors and containers.
        try:
            obj, placeholders = load_restricted(path)
        except UnsafeCheckpoint:
            raise
        except Exception as error:  # a corrupt pickle fails in many ways
            raise ValueError(f"cannot read checkpoint {path}: {error!r}") from error
        reader = "restricted"
    except Exception as error:  # a corrupt file fails in many ways (KeyError, EOFError, ...)
        raise ValueError(f"cannot read checkpoint {path}: {error!r}") from error
    state = _state_of(obj, path)
    top = sorted(str(k) for k in obj) if isinstance(obj, dict) else []
    epoch = obj.get("epoch") if isinstance(obj, dict) else None
    return ReleaseCheckpoint(path, state, reader, top, placeholders, epoch)


__all__ = ["ReleaseCheckpoint", "UnsafeCheckpoint", "read_release_checkpoint"]
