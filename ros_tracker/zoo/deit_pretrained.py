"""Load ImageNet ViT-Tiny / DeiT-Tiny checkpoints in timm's key layout into ABTrack.

timm's ``vit_tiny_patch16_224`` and ``deit_tiny_patch16_224`` share one layout:
``patch_embed.proj``, ``cls_token``, ``pos_embed`` (class entry + a 14x14 grid),
``blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``norm`` and the
classifier ``head``. The mapping onto ABTrack:

* blocks, patch embedding and final norm copy over by name (our qkv has timm's row order);
* the grid part of ``pos_embed`` is resampled (bicubic, antialiased when shrinking, as timm
  resamples) to the 8x8 template and the 16x16 search grids;
* ``cls_token + pos_embed[class entry]`` initialises the bypass token: both are the one
  summary token that attends to every patch;
* the classifier (and a distilled model's ``dist_token`` / ``head_dist``) is reported unused;
  the BDMs, DR vectors (kept at one) and the center head are reported missing.

A-ViT-T's checkpoint (NVlabs/A-ViT, the ``abtrack_avit_tiny`` backbone) has the same layout;
it is released as a ``.pth`` file with the state dict under ``model`` and the training
arguments pickled next to it, which :mod:`ros_tracker.zoo.authors.reader` reads without
executing anything. Other files are read as safetensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple, Union

import torch
import torch.nn.functional as F

from ros_tracker.zoo.abtrack import ABTrack

_BLOCK_PARTS = (
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
    "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
    "mlp.fc2.weight", "mlp.fc2.bias",
)  # fmt: skip


@dataclass
class PretrainedLoadReport:
    """What a pretrained checkpoint gave the network and what it left out."""

    loaded: List[str] = field(default_factory=list)  # network keys set from the checkpoint
    missing: List[str] = field(default_factory=list)  # network keys left at initialisation
    unused: List[str] = field(default_factory=list)  # checkpoint keys not used
    resampled: Dict[str, Tuple[Tuple[int, int], Tuple[int, int]]] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)}, missing {len(self.missing)} ({', '.join(self.missing)}), "
            f"unused {len(self.unused)} ({', '.join(self.unused)}), resampled {self.resampled}"
        )


def resample_grid(grid_tokens: torch.Tensor, size: int) -> torch.Tensor:
    """(1, g*g, d) position embeddings on a g x g grid -> (1, size*size, d)."""
    count, dim = grid_tokens.shape[1], grid_tokens.shape[2]
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"position grid of {count} entries is not square")
    if side == size:
        return grid_tokens.clone()
    image = grid_tokens.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    image = F.interpolate(
        image, size=(size, size), mode="bicubic", align_corners=False, antialias=size < side
    )
    return image.permute(0, 2, 3, 1).reshape(1, size * size, dim).to(grid_tokens.dtype)


def _split_pos_embed(pos_embed: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(class-token entries, grid entries) of a timm pos_embed (1, prefix + g*g, d)."""
    count = pos_embed.shape[1]
    side = math.isqrt(count)
    prefix = count - side * side  # 0 (no class entry), 1 (class) or 2 (class + distillation)
    if prefix > 2:
        raise ValueError(f"pos_embed of {count} entries is not prefix + square grid")
    return pos_embed[:, :prefix], pos_embed[:, prefix:]


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """A safetensors file, or a torch.save checkpoint read without executing pickled code."""
    if path.endswith((".pth", ".pt", ".pth.tar", ".tar")):
        from ros_tracker.zoo.authors.reader import read_release_checkpoint

        return dict(read_release_checkpoint(path).state)
    from ros_tracker.zoo.checkpoints import read_weights

    return read_weights(path)


def convert_timm_vit(
    state: Mapping[str, torch.Tensor], model: ABTrack
) -> Tuple[Dict[str, torch.Tensor], PretrainedLoadReport]:
    """Map a timm ViT/DeiT state dict onto ``model``'s keys; shapes are checked."""
    if model.config.pruned_dims is not None:
        raise ValueError("load pretrained weights into the unpruned network, then prune")
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    own = model.state_dict()
    config = model.config
    converted: Dict[str, torch.Tensor] = {}
    used = set()
    report = PretrainedLoadReport()

    for name in ("patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"):
        if name in state:
            converted[name] = state[name]
            used.add(name)
    for index in range(config.depth):
        for part in _BLOCK_PARTS:
            key = f"blocks.{index}.{part}"
            if key in state:
                converted[key] = state[key]
                used.add(key)

    if "pos_embed" in state:
        prefix, grid = _split_pos_embed(state["pos_embed"])
        side = math.isqrt(grid.shape[1])
        converted["pos_embed_template"] = resample_grid(grid, config.template_grid)
        converted["pos_embed_search"] = resample_grid(grid, config.search_grid)
        report.resampled["pos_embed_template"] = ((side, side), (config.template_grid,) * 2)
        report.resampled["pos_embed_search"] = ((side, side), (config.search_grid,) * 2)
        used.add("pos_embed")
        if "cls_token" in state:
            position = prefix[:, :1] if prefix.shape[1] else 0.0
            converted["bypass_token"] = state["cls_token"] + position
            used.add("cls_token")
    elif "cls_token" in state:
        converted["bypass_token"] = state["cls_token"]
        used.add("cls_token")

    wrong = [
        f"{k}: checkpoint {tuple(v.shape)}, network {tuple(own[k].shape)}"
        for k, v in converted.items()
        if tuple(v.shape) != tuple(own[k].shape)
    ]
    if wrong:
        raise ValueError("checkpoint does not fit ABTrack (" + "; ".join(sorted(wrong)) + ")")

    report.loaded = sorted(converted)
    report.missing = sorted(k for k in own if k not in converted)
    report.unused = sorted(k for k in state if k not in used)
    return {k: v.to(own[k].dtype) for k, v in converted.items()}, report


def load_timm_vit(
    model: ABTrack, source: Union[str, Mapping[str, torch.Tensor]]
) -> PretrainedLoadReport:
    """Load a timm-layout ViT-Tiny / DeiT-Tiny checkpoint (safetensors path or state dict)."""
    state = read_checkpoint(source) if isinstance(source, str) else source
    converted, report = convert_timm_vit(state, model)
    merged = model.state_dict()
    merged.update(converted)
    model.load_state_dict(merged, strict=True)
    return report
