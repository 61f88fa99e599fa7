"""Initialise a ViT-based zoo network from a MAE or timm ViT checkpoint.

Recognised checkpoint keys (after stripping a leading ``module.``/``model.``/``backbone.``/
``encoder.``): ``patch_embed.proj.{weight,bias}``, ``pos_embed``, ``blocks.N.{norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2}.{weight,bias}``. ``cls_token``, ``norm``, ``fc_norm``,
``head``, ``mask_token`` and MAE's ``decoder_*`` have no place in a tracker and are reported as
unused.

The target network names its patch projection and blocks the same way and tells the loader
which position-embedding parameters to fill through ``vit_position_grids()`` (parameter name ->
(rows, cols)). The checkpoint's position embedding loses its class-token rows and is resized
bicubically to each grid (e.g. 14x14 -> 8x8 template and 18x18 search).

Two adaptations from MixFormerV2's model reduction are available: ``layer_map`` picks which
checkpoint block initialises each network block (default: the first ones), and MLPs narrower
than the checkpoint's are initialised from its leading rows/columns (w' = w[:d1', :d2']).

Weights are read from safetensors files or taken as an in-memory state dict; a pickled ``.pth``
must be converted to safetensors first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ros_tracker.zoo.checkpoints import CheckpointMismatch, read_weights

_PREFIXES = ("module.", "model.", "backbone.", "encoder.")
_BLOCK_PARAMS = tuple(
    f"{layer}.{kind}"
    for layer in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
    for kind in ("weight", "bias")
)
_SLICEABLE = ("mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight")


@dataclass
class PretrainedReport:
    """What a checkpoint initialised: network keys filled, adapted, left alone; unused keys."""

    loaded: List[str] = field(default_factory=list)
    adapted: List[str] = field(default_factory=list)  # "network_key <- checkpoint_key: how"
    missing: List[str] = field(default_factory=list)  # network keys not in the checkpoint
    unused: List[str] = field(default_factory=list)  # checkpoint keys with no place

    def summary(self) -> str:
        missing = ", ".join(self.missing) or "none"
        unused = ", ".join(self.unused) or "none"
        return (
            f"loaded {len(self.loaded)} tensors ({len(self.adapted)} adapted); "
            f"{len(self.missing)} network tensors left at init: {missing}; unused: {unused}"
        )


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drop wrapper prefixes (``module.``, ``backbone.`` ...) shared by every key."""
    result = dict(state)
    changed = True
    while changed and result:
        changed = False
        for prefix in _PREFIXES:
            if all(key.startswith(prefix) for key in result):
                result = {key[len(prefix) :]: value for key, value in result.items()}
                changed = True
    return result


def interpolate_position_embedding(
    pos_embed: torch.Tensor,
    grid: Tuple[int, int],
    source_grid: Optional[Tuple[int, int]] = None,
) -> torch.Tensor:
    """(1, prefix + h*w, C) or (prefix + h*w, C) -> (1, rows*cols, C) on ``grid``.

    Leading class/register-token rows are dropped; their count is whatever precedes the largest
    square grid unless ``source_grid`` says otherwise.
    """
    table = pos_embed.reshape(-1, pos_embed.shape[-1]).float()
    if source_grid is None:
        side = int(math.isqrt(table.shape[0]))
        source_grid = (side, side)
    patches = source_grid[0] * source_grid[1]
    if patches > table.shape[0] or patches == 0:
        raise ValueError(
            f"position embedding with {table.shape[0]} rows cannot hold a "
            f"{source_grid[0]}x{source_grid[1]} grid"
        )
    table = table[table.shape[0] - patches :]
    if tuple(source_grid) == tuple(grid):
        return table[None].clone()
    image = table.reshape(source_grid[0], source_grid[1], -1).permute(2, 0, 1)[None]
    resized = F.interpolate(image, size=tuple(grid), mode="bicubic", align_corners=False)
    return resized[0].permute(1, 2, 0).reshape(1, grid[0] * grid[1], -1)


def _slice_to(tensor: torch.Tensor, shape: Sequence[int]) -> Optional[torch.Tensor]:
    """Leading part of ``tensor`` with ``shape``, or None when some dimension is too small."""
    if tensor.dim() != len(shape) or any(have < want for have, want in zip(tensor.shape, shape)):
        return None
    return tensor[tuple(slice(0, want) for want in shape)].clone()


def convert_vit_state_dict(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    layer_map: Optional[Sequence[int]] = None,
    slice_mlp: bool = True,
) -> Tuple[Dict[str, torch.Tensor], PretrainedReport]:
    """Checkpoint tensors renamed and reshaped for ``model``, plus the report.

    ``layer_map[i]`` is the checkpoint block that initialises network block i (the paper's
    "Tea-skip4" is ``[2, 5, 8, 11]``); default: block i from block i.
    Raises CheckpointMismatch when a tensor has a place but an incompatible shape (another
    embedding width or patch size).
    """
    target = model.state_dict()
    grids: Dict[str, Tuple[int, int]] = model.vit_position_grids()  # type: ignore[operator]
    depth = len(model.blocks)  # type: ignore[arg-type]
    if layer_map is None:
        layer_map = list(range(depth))
    if len(layer_map) != depth:
        raise ValueError(f"layer_map has {len(layer_map)} entries, the network {depth} blocks")
    state = strip_prefixes(state)
    report = PretrainedReport()
    converted: Dict[str, torch.Tensor] = {}
    bad_shapes: List[str] = []
    used = set()

    def place(net_key: str, ckpt_key: str, value: torch.Tensor, how: str = "") -> None:
        want = tuple(target[net_key].shape)
        if tuple(value.shape) != want:
            sliced = None
            if slice_mlp and net_key.endswith(_SLICEABLE):
                sliced = _slice_to(value, want)
            if sliced is None:
                bad_shapes.append(
                    f"{net_key} <- {ckpt_key}: checkpoint {tuple(value.shape)}, network {want}"
                )
                return
            how = f"sliced {tuple(value.shape)} -> {want}"
            value = sliced
        converted[net_key] = value.to(target[net_key].dtype)
        used.add(ckpt_key)
        report.loaded.append(net_key)
        if how:
            report.adapted.append(f"{net_key} <- {ckpt_key}: {how}")

    for ckpt_key, value in state.items():
        if ckpt_key.startswith("patch_embed.proj.") and ckpt_key in target:
            place(ckpt_key, ckpt_key, value)
        elif ckpt_key == "pos_embed":
            for net_key, grid in grids.items():
                resized = interpolate_position_embedding(value, grid)
                side = int(math.isqrt(value.reshape(-1, value.shape[-1]).shape[0]))
                place(net_key, ckpt_key, resized, f"{side}x{side} -> {grid[0]}x{grid[1]}")

    for index, source in enumerate(layer_map):
        for name in _BLOCK_PARAMS:
            ckpt_key = f"blocks.{source}.{name}"
            net_key = f"blocks.{index}.{name}"
            if ckpt_key in state and net_key in target:
                how = "" if source == index else f"from block {source}"
                place(net_key, ckpt_key, state[ckpt_key], how)

    if bad_shapes:
        raise CheckpointMismatch([], [], bad_shapes)
    report.missing = sorted(key for key in target if key not in converted)
    report.unused = sorted(key for key in state if key not in used)
    return converted, report


def load_vit_pretrained(
    model: nn.Module,
    source: Union[str, Mapping[str, torch.Tensor]],
    layer_map: Optional[Sequence[int]] = None,
    slice_mlp: bool = True,
) -> PretrainedReport:
    """Fill ``model`` from a ViT checkpoint (safetensors path or state dict); return the report.

    Tensors without a counterpart (prediction tokens, heads) keep their initial values.
    """
    state = read_weights(source) if isinstance(source, str) else source
    converted, report = convert_vit_state_dict(state, model, layer_map, slice_mlp)
    merged = model.state_dict()
    merged.update(converted)
    model.load_state_dict(merged, strict=True)
    return report
