"""HiT: LeViT-based one-stream tracker with a Bridge Module and a corner head.

Kang et al., "Exploring Lightweight Hierarchical Vision Transformers for Efficient Visual
Tracking", ICCV 2023. Three entries: ``hit_base`` (LeViT-384), ``hit_small`` (LeViT-128) and
``hit_tiny`` (LeViT-128S), template 128 px (factor 2) and search 256 px (factor 4).

Network, in order:

1. LeViT's conv stem embeds each image by 16 (template 8x8, search 16x16 tokens).
2. The search tokens followed by the template tokens go through three LeViT stages joined by
   Shrink Attention (see ``ros_tracker.zoo.levit``), with the dual-image attention bias.
3. The search part of each stage output is reshaped to a map (16x16, 8x8, 4x4); the Bridge
   Module upsamples the deepest by a stride-2 transposed convolution, adds it to the middle
   one, upsamples again and adds it to the first: one stride-16 search feature map.
4. The global vector is the mean of all stage-3 tokens. The corner head projects the fused
   map and the global vector to ``hidden_dim``, re-weights every location by its dot product
   with the global vector, and runs two conv towers (top-left and bottom-right corners).

What runs when (HiT is one-stream: template and search tokens attend to each other in every
layer, so almost nothing about the template can be computed once):

* ``encode_template(template)`` -> ``template_tokens`` (N, 64, C): only the template's conv
  stem, which depends on the template image alone;
* ``track_search(template_tokens, search)`` -> ``corner_logits`` (N, 2, 16, 16): every frame,
  the search stem, all three transformer stages over the joint token sequence, the Bridge
  Module and the corner head.

Outputs follow the zoo's ``hit`` convention: raw logits of the top-left and bottom-right
corner maps. The runtime applies a softmax per map and takes the expectation over cell centres
((i + 0.5) / W) to get x1, y1, x2, y2 normalised to the search crop. (The authors' corner
head takes the expectation over cell corners i / W; a checkpoint converted from their code
would need that half-cell shift.)
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from ros_tracker.zoo.base import TrackerNetwork
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.levit import JointLayout, JointLeViT, LeViTSpec, fold_batchnorm
from ros_tracker.zoo.registry import register_model

PATCH_STRIDE = 16

# Published LeViT widths (Graham et al., Table 1 / timm's model configs).
LEVIT_SPECS: Dict[str, LeViTSpec] = {
    "LeViT-384": LeViTSpec(
        embed_dims=(384, 512, 768), key_dim=32, num_heads=(6, 9, 12), depths=(4, 4, 4)
    ),
    "LeViT-128": LeViTSpec(
        embed_dims=(128, 256, 384), key_dim=16, num_heads=(4, 8, 12), depths=(4, 4, 4)
    ),
    "LeViT-128S": LeViTSpec(
        embed_dims=(128, 256, 384), key_dim=16, num_heads=(4, 6, 8), depths=(2, 3, 4)
    ),
}

# A configuration small enough for unit tests (builder overrides, any hit_* entry).
TINY_TEST_OVERRIDES: Dict[str, Any] = {
    "embed_dims": (16, 24, 32),
    "key_dim": 4,
    "num_heads": (2, 3, 4),
    "depths": (1, 1, 1),
    "template_size": 64,
    "search_size": 128,
    "hidden_dim": 16,
    "head_channels": 16,
}


@dataclass(frozen=True)
class HiTConfig:
    backbone: LeViTSpec
    template_size: int = 128
    search_size: int = 256
    hidden_dim: int = 256  # width of the corner head's input (the authors' HIDDEN_DIM)
    head_channels: int = 256  # first conv width of each corner tower, halved three times

    def with_overrides(self, **overrides: Any) -> HiTConfig:
        """Apply overrides given either as HiTConfig or as LeViTSpec field names."""
        spec_fields = {f.name for f in dataclasses.fields(LeViTSpec)}
        own_fields = {f.name for f in dataclasses.fields(HiTConfig)} - {"backbone"}
        unknown = set(overrides) - spec_fields - own_fields
        if unknown:
            raise TypeError(
                f"unknown HiT overrides: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(spec_fields | own_fields))})"
            )
        spec = dataclasses.replace(
            self.backbone, **{k: _as_tuple(v) for k, v in overrides.items() if k in spec_fields}
        )
        return dataclasses.replace(
            self, backbone=spec, **{k: v for k, v in overrides.items() if k in own_fields}
        )


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class UpsampleNorm(nn.Module):
    """Stride-2 transposed convolution (kernel 2) followed by BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.deconv(x))


class BridgeModule(nn.Module):
    """O = S_max + Up(S_mid + Up(S_min)) on the search maps of the three stages (Eq. 3).

    As in the authors' code each upsampling carries a BatchNorm and the intermediate sum goes
    through a ReLU.
    """

    def __init__(self, embed_dims: Tuple[int, int, int]) -> None:
        super().__init__()
        self.up_min = UpsampleNorm(embed_dims[2], embed_dims[1])
        self.up_mid = UpsampleNorm(embed_dims[1], embed_dims[0])
        self.act = nn.ReLU()

    def forward(self, s_max: torch.Tensor, s_mid: torch.Tensor, s_min: torch.Tensor):
        mid = self.act(s_mid + self.up_min(s_min))
        return s_max + self.up_mid(mid)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class CornerTower(nn.Module):
    """Four 3x3 Conv-BN-ReLU layers (channels, /2, /4, /8) and a 1x1 conv to one logit map."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        widths = [in_channels, channels, channels // 2, channels // 4, channels // 8]
        self.layers = nn.Sequential(*[_conv_bn_relu(a, b) for a, b in zip(widths, widths[1:])])
        self.score = nn.Conv2d(widths[-1], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.layers(x))


class GlobalCornerHead(nn.Module):
    """Corner head on the Bridge output, re-weighted by the global vector.

    Each location's feature is multiplied by its dot product with the global vector (the
    "attention map between G and O_s"), enhancing or suppressing it by global context.
    """

    def __init__(self, feature_dim: int, global_dim: int, hidden_dim: int, channels: int):
        super().__init__()
        self.feature_proj = nn.Linear(feature_dim, hidden_dim)
        self.global_proj = nn.Linear(global_dim, hidden_dim)
        self.top_left = CornerTower(hidden_dim, channels)
        self.bottom_right = CornerTower(hidden_dim, channels)

    def forward(self, fused: torch.Tensor, global_vector: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = fused.shape
        local = self.feature_proj(fused.flatten(2).transpose(1, 2))  # (N, HW, D)
        context = self.global_proj(global_vector).unsqueeze(-1)  # (N, D, 1)
        weighted = local * (local @ context)
        weighted = weighted.transpose(1, 2).reshape(batch, -1, height, width)
        return torch.cat([self.top_left(weighted), self.bottom_right(weighted)], dim=1)


class HiT(TrackerNetwork):
    """HiT network: template stem once, everything else per frame (see module docstring)."""

    def paper_complexity(self) -> Tuple[int, int]:
        return paper_complexity(self)

    def __init__(self, card: ModelCard, config: HiTConfig) -> None:
        super().__init__(card)
        for size in (config.template_size, config.search_size):
            if size % PATCH_STRIDE:
                raise ValueError(f"image sizes must be multiples of 16, got {size}")
        if (config.search_size // PATCH_STRIDE) % 4:
            raise ValueError("the search grid side must be a multiple of 4 (two shrinks)")
        self.config = config
        spec = config.backbone
        self.search_side = config.search_size // PATCH_STRIDE
        layout = JointLayout((self.search_side, config.template_size // PATCH_STRIDE))
        self.backbone = JointLeViT(spec, layout)
        self.bridge = BridgeModule(spec.embed_dims)
        self.head = GlobalCornerHead(
            spec.embed_dims[0], spec.embed_dims[2], config.hidden_dim, config.head_channels
        )

    def encode_template(self, template: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return (self.backbone.stem(template),)

    def track_search(
        self, template_tokens: torch.Tensor, search: torch.Tensor
    ) -> Tuple[torch.Tensor, ...]:
        search_tokens = self.backbone.stem(search)
        stage_outputs = self.backbone(torch.cat([search_tokens, template_tokens], dim=1))
        maps: List[torch.Tensor] = []
        for tokens, layout in zip(stage_outputs, self.backbone.layouts):
            side = layout.sides[0]
            search_part = tokens[:, : side * side]
            maps.append(search_part.transpose(1, 2).reshape(tokens.shape[0], -1, side, side))
        global_vector = stage_outputs[-1].mean(dim=1)
        fused = self.bridge(*maps)
        return (self.head(fused, global_vector),)


# ---------------------------------------------------------------------------------------------
# Counting as the paper does.


def paper_complexity(model: HiT) -> Tuple[int, int]:
    """(parameters, MACs) of one tracked frame counted like HiT's Table 1.

    The authors count with thop after folding the backbone's BatchNorms into its linear and
    conv layers, on the full forward pass (template stem included, since their tracker feeds
    the image pair every frame). thop counts the MACs of Linear / Conv / ConvTranspose layers
    only (not the attention matrix products) and takes a transposed convolution as
    ``output elements x in_channels x kernel area``; its parameter total skips the attention
    bias tables (parameters held directly by the attention modules).
    """
    folded = copy.deepcopy(model).eval()
    fold_batchnorm(folded.backbone)
    params = sum(p.numel() for n, p in folded.named_parameters() if not n.endswith("bias.table"))
    total = [0]

    def layer_hook(module: nn.Module, inputs, output) -> None:
        if isinstance(module, nn.Linear):
            total[0] += output.numel() * module.in_features
        else:
            kernel = 1
            for k in module.kernel_size:
                kernel *= k
            total[0] += output.numel() * (module.in_channels // module.groups) * kernel

    handles = [
        m.register_forward_hook(layer_hook)
        for m in folded.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
    ]
    inputs = folded.example_inputs()
    try:
        with torch.no_grad():
            folded(inputs["template"], inputs["search"])
    finally:
        for handle in handles:
            handle.remove()
    return params, total[0]


# ---------------------------------------------------------------------------------------------
# Registry entries.

_PAPER = (
    "Kang, Chen, Wang, Peng, Lu: Exploring Lightweight Hierarchical Vision Transformers for "
    "Efficient Visual Tracking (ICCV 2023)"
)
_POSTPROCESS = (
    "corner_logits (N, 2, H, W): softmax over each map; expectation over cell centres "
    "((i + 0.5) / W, (j + 0.5) / H) gives x1, y1 from map 0 and x2, y2 from map 1, normalised "
    "to the search crop; map back to the image and clip the box to the image with a 10 px "
    "margin. No score output, no Hann window, no template update."
)
_PER_FRAME = (
    "encode_template caches only the template's conv stem (patch embedding); every frame runs "
    "the search stem, all three LeViT stages with Shrink Attention over the joint search + "
    "template tokens (one-stream: template tokens are re-processed with each search crop), the "
    "Bridge Module and the corner head."
)
_COUNTING = (
    "Counted as the authors do (thop on the full template + search forward pass, backbone "
    "BatchNorms folded): MACs of Linear/Conv layers only, attention matrix products left out, "
    "a transposed conv counted as output elements x in_channels x kernel area; parameters "
    "without the attention bias tables. hit.paper_complexity implements this and lands within "
    "0.5 % of Table 1. counting.py's mode='all' (every MAC incl. attention products, "
    "transposed convs at their true cost) gives 2-6 % more MACs than the table, "
    "mode='layers' 4-5 % less. In deployment the cached template stem (0.13 G for LeViT-384, "
    "0.016 G for LeViT-128/128S) is not re-run per frame."
)


def _card(name: str, levit: str, params: float, macs: float) -> ModelCard:
    return ModelCard(
        name=name,
        family="hit",
        paper=_PAPER,
        backbone=levit,
        template_size=128,
        search_size=256,
        template_factor=2.0,
        search_factor=4.0,
        head="corner",
        output_names=("corner_logits",),
        template_input_names=("template",),
        template_state_names=("template_tokens",),
        feature_size=16,
        hann_window=False,
        online_template=False,
        template_update_interval=0,
        postprocess=_POSTPROCESS,
        per_frame=_PER_FRAME,
        reference_params=params,
        reference_macs=macs,
        counting_note=_COUNTING,
        extra={"levit": levit, "box_clip_margin_px": 10},
    )


def _build(card: ModelCard, **overrides: Any) -> HiT:
    config = HiTConfig(backbone=LEVIT_SPECS[card.backbone]).with_overrides(**overrides)
    if (config.template_size, config.search_size) != (card.template_size, card.search_size):
        card = card.replace(
            template_size=config.template_size,
            search_size=config.search_size,
            feature_size=config.search_size // PATCH_STRIDE,
        )
    return HiT(card, config)


def _register(name: str, levit: str, params: float, macs: float, drop_path: float) -> None:
    def builder(card: ModelCard, **overrides: Any) -> HiT:
        overrides.setdefault("drop_path", drop_path)
        return _build(card, **overrides)

    register_model(_card(name, levit, params, macs))(builder)


# Paper Table 1; LeViT-384 is trained with stochastic depth 0.1 in the authors' setup.
_register("hit_base", "LeViT-384", 42.14, 4.34, drop_path=0.1)
_register("hit_small", "LeViT-128", 11.03, 1.13, drop_path=0.0)
_register("hit_tiny", "LeViT-128S", 9.59, 0.99, drop_path=0.0)

__all__: List[str] = [
    "HiT",
    "HiTConfig",
    "LEVIT_SPECS",
    "TINY_TEST_OVERRIDES",
    "paper_complexity",
]
