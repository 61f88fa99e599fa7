"""Initialise a HiT backbone from an ImageNet LeViT checkpoint in timm's layout.

HiT starts from ImageNet-pretrained LeViT. timm publishes those weights as safetensors with
keys such as ``stem.conv1.linear.weight``, ``stages.1.downsample.attn_downsample.kv.linear.weight``
or ``stages.0.blocks.2.mlp.ln1.bn.running_var``; this module renames them onto
``HiT.backbone`` and checks that every tensor fits.

Attention biases: LeViT's tables hold one value per head and offset (|dy|, |dx|) of a single
224 px image grid (14, 7 and 4 tokens per side), while HiT's dual-image tables cover the
diagonal search + template plane. The authors discard the pretrained tables and start them at
zero (``attention_biases="skip"``, the default). ``"overlap"`` copies the offsets both tables
have (|dy|, |dx| < LeViT's side) and leaves the others at zero.

Only the classifier heads (``head.*``, ``head_dist.*``) and the derived index buffers
(``*.attention_bias_idxs``) are dropped; any other key that does not map raises
:class:`~ros_tracker.zoo.checkpoints.CheckpointMismatch`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Tuple, Union

import torch

from ros_tracker.zoo.checkpoints import CheckpointMismatch, read_weights
from ros_tracker.zoo.hit import HiT

_BIAS_MODES = ("skip", "overlap")

# (timm pattern, our pattern) applied in order; the first match wins.
_RENAMES: Tuple[Tuple[str, str], ...] = (
    (r"^stem\.conv(\d)\.linear\.", r"backbone.stem.conv\1.conv."),
    (r"^stem\.conv(\d)\.bn\.", r"backbone.stem.conv\1.bn."),
    (
        r"^stages\.(\d+)\.downsample\.attn_downsample\.(q|proj)\.ln\.",
        r"backbone.stages.\1.shrink.attn.\2.",
    ),
    (
        r"^stages\.(\d+)\.downsample\.attn_downsample\.attention_biases$",
        r"backbone.stages.\1.shrink.attn.bias.table",
    ),
    (r"^stages\.(\d+)\.downsample\.attn_downsample\.", r"backbone.stages.\1.shrink.attn."),
    (r"^stages\.(\d+)\.downsample\.mlp\.", r"backbone.stages.\1.shrink.mlp."),
    (
        r"^stages\.(\d+)\.blocks\.(\d+)\.attn\.attention_biases$",
        r"backbone.stages.\1.blocks.\2.attn.bias.table",
    ),
    (
        r"^stages\.(\d+)\.blocks\.(\d+)\.attn\.proj\.ln\.",
        r"backbone.stages.\1.blocks.\2.attn.proj.",
    ),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"backbone.stages.\1.blocks.\2."),
)
_DROPPED = re.compile(r"^(head|head_dist)\.|\.attention_bias_idxs$")


@dataclass
class LoadReport:
    """What a timm LeViT checkpoint contributed to the network."""

    loaded: List[str] = field(default_factory=list)  # our keys written from the checkpoint
    dropped: List[str] = field(default_factory=list)  # checkpoint keys deliberately unused
    bias_tables: List[str] = field(default_factory=list)  # our tables left at their init
    partial_bias_tables: List[str] = field(default_factory=list)  # filled on the overlap


def timm_key_to_hit(key: str) -> str:
    """Our state-dict key for one timm LeViT key ('' for keys that are dropped)."""
    if _DROPPED.search(key):
        return ""
    for pattern, replacement in _RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    raise KeyError(key)


def _fit_bias_table(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Copy LeViT's (heads, side*side) table into our (heads, E, E) one where offsets agree."""
    heads = target.shape[0]
    side = int(round((source.numel() / heads) ** 0.5))
    if source.shape[0] != heads or side * side * heads != source.numel():
        raise ValueError(f"bias table {tuple(source.shape)} does not fit {tuple(target.shape)}")
    grid = source.reshape(heads, side, side)
    common = min(side, target.shape[1])
    out = target.clone()
    out[:, :common, :common] = grid[:, :common, :common]
    return out


def convert_timm_levit(
    timm_state: Dict[str, torch.Tensor], model: HiT, attention_biases: str = "skip"
) -> Tuple[Dict[str, torch.Tensor], LoadReport]:
    """Rename and check a timm LeViT state dict; returns our backbone entries and a report."""
    if attention_biases not in _BIAS_MODES:
        raise ValueError(f"attention_biases must be one of {_BIAS_MODES}")
    own = model.state_dict()
    report = LoadReport()
    converted: Dict[str, torch.Tensor] = {}
    unexpected: List[str] = []
    shapes: List[str] = []
    for key, value in timm_state.items():
        try:
            ours = timm_key_to_hit(key)
        except KeyError:
            unexpected.append(key)
            continue
        if not ours:
            report.dropped.append(key)
            continue
        if ours not in own:
            unexpected.append(key)
            continue
        target = own[ours]
        if ours.endswith("bias.table"):
            if attention_biases == "skip":
                report.dropped.append(key)
                continue
            try:
                converted[ours] = _fit_bias_table(value, target)
            except ValueError as error:
                shapes.append(f"{key}: {error}")
                continue
            report.partial_bias_tables.append(ours)
            continue
        if value.ndim == 4 and target.ndim == 2 and value.shape[2:] == (1, 1):
            value = value[:, :, 0, 0]  # timm's conv-mode LeViT stores linear layers as 1x1 convs
        if tuple(value.shape) != tuple(target.shape):
            shapes.append(
                f"{key} -> {ours}: checkpoint {tuple(value.shape)}, network {tuple(target.shape)}"
            )
            continue
        converted[ours] = value.to(target.dtype)
    backbone_keys = [k for k in own if k.startswith("backbone.")]
    missing = sorted(
        k for k in backbone_keys if k not in converted and not k.endswith("bias.table")
    )
    if missing or unexpected or shapes:
        raise CheckpointMismatch(missing, sorted(unexpected), sorted(shapes))
    report.loaded = sorted(converted)
    report.bias_tables = sorted(
        k for k in backbone_keys if k.endswith("bias.table") and k not in converted
    )
    return converted, report


def load_timm_levit(
    model: HiT,
    checkpoint: Union[str, Dict[str, torch.Tensor]],
    attention_biases: str = "skip",
) -> LoadReport:
    """Load a timm LeViT checkpoint (safetensors path or state dict) into ``model.backbone``.

    The Bridge Module and the corner head keep their current (random) weights.
    """
    state = read_weights(checkpoint) if isinstance(checkpoint, str) else checkpoint
    converted, report = convert_timm_levit(state, model, attention_biases)
    merged = model.state_dict()
    merged.update(converted)
    model.load_state_dict(merged, strict=True)
    return report
