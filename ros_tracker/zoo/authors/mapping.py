"""Bookkeeping of one explicit key map: every source key consumed, every target key filled.

A converter asks for the authors' tensors by name (``take``) and writes ours (``put``); at
the end :meth:`StateMap.finish` raises :class:`~ros_tracker.zoo.checkpoints.CheckpointMismatch`
naming every authors' key the file lacks, every key of the file nothing used, and every
shape that does not fit. Nothing is loaded leniently.
"""

from __future__ import annotations

from typing import Dict, List, Mapping

import torch

from ros_tracker.zoo.checkpoints import CheckpointMismatch

# BatchNorm's batch counter carries no weights; a file without it keeps the network's own.
OPTIONAL_SUFFIX = ".num_batches_tracked"


class ReleaseMismatch(CheckpointMismatch):
    """A release checkpoint that does not fit the key map; names every key in the authors'
    layout (missing from the file, present but unused) and every shape that differs."""

    def __init__(self, missing: List[str], unexpected: List[str], shapes: List[str]) -> None:
        super().__init__(missing, unexpected, shapes)
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(
                f"in the checkpoint but unused ({len(unexpected)}): {', '.join(unexpected)}"
            )
        if shapes:
            parts.append(f"not fitting ({len(shapes)}): {'; '.join(shapes)}")
        self.args = (" | ".join(parts),)

    def __str__(self) -> str:
        return self.args[0]


class StateMap:
    """Source state dict (the authors' layout) -> target state dict (the network's)."""

    def __init__(self, source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]):
        self.source = source
        self.target = target
        self.result: Dict[str, torch.Tensor] = {}
        self.used: set = set()
        self.absent: List[str] = []  # source keys the map needs and the file lacks
        self.shapes: List[str] = []
        self.unknown_targets: List[str] = []

    def has(self, key: str) -> bool:
        return key in self.source

    def take(self, key: str) -> torch.Tensor:
        """The source tensor ``key`` (float tensors as float32); records it as used."""
        if key not in self.source:
            if key not in self.absent:
                self.absent.append(key)
            return torch.empty(0)
        self.used.add(key)
        value = self.source[key]
        return value.float() if value.is_floating_point() else value

    def put(self, key: str, value: torch.Tensor, origin: str = "") -> None:
        """Write target ``key``; a shape that does not fit is reported, not loaded."""
        if value.numel() == 0 and value.dim() == 1 and origin in self.absent:
            return  # the source tensor is missing: already reported
        if key not in self.target:
            self.unknown_targets.append(f"{origin or '?'} -> {key}")
            return
        expected = tuple(self.target[key].shape)
        if tuple(value.shape) != expected:
            self.shapes.append(
                f"{origin or key} -> {key}: checkpoint {tuple(value.shape)}, network {expected}"
            )
            return
        self.result[key] = value.to(self.target[key].dtype).contiguous()

    def copy(self, source_key: str, target_key: str) -> None:
        self.put(target_key, self.take(source_key), source_key)

    def copy_prefix(self, source_prefix: str, target_prefix: str, names: List[str]) -> None:
        for name in names:
            self.copy(source_prefix + name, target_prefix + name)

    def finish(self) -> Dict[str, torch.Tensor]:
        """The full target state dict, or CheckpointMismatch naming every problem."""
        unused = sorted(k for k in self.source if k not in self.used)
        unfilled = sorted(
            k for k in self.target if k not in self.result and not k.endswith(OPTIONAL_SUFFIX)
        )
        missing = list(self.absent)
        if unfilled and not missing:
            # The map itself left a network tensor empty: name it as the network's key.
            missing = [f"(network) {k}" for k in unfilled]
        problems = self.shapes + [f"no network tensor for {k}" for k in self.unknown_targets]
        if missing or unused or problems:
            raise ReleaseMismatch(missing, unused, problems)
        merged = {k: v for k, v in self.target.items()}
        merged.update(self.result)
        return merged


BN_TENSORS = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
LINEAR_TENSORS = ["weight", "bias"]


def copy_batchnorm(state: StateMap, source_prefix: str, target_prefix: str) -> None:
    """A BatchNorm's tensors; a file without the batch counter keeps the network's."""
    for name in BN_TENSORS:
        key = source_prefix + name
        if name == "num_batches_tracked" and not state.has(key):
            continue
        state.copy(key, target_prefix + name)
