"""ABTrack: a one-stream ViT-Tiny / DeiT-Tiny tracker that adaptively bypasses blocks.

Network (paper Sec. 3). The 128 px template and the 256 px search crop are cut into 16 px
patches by one shared patch embedding, get separate learned position embeddings (8x8 and
16x16 grids) and are concatenated behind a learned *bypass token*:
``[bypass, 64 template tokens, 256 search tokens]``. Twelve pre-norm ViT blocks (width 192,
3 heads) attend jointly over all tokens; a final LayerNorm follows, and the 256 search tokens,
laid out as a 16x16 map, feed an OSTrack-style center head (score logits, sigmoid offsets,
sigmoid sizes).

Bypass Decision Modules (Sec. 3.2). Every block after the first ``n_enf`` has a BDM,
``p_i = sigmoid(l_i(b_i))`` where ``b_i`` is the bypass token as it enters block i (it is
a summary token that attends like the others). At inference the block is skipped, all
tokens passing unchanged, when ``p_i > rho`` (rho = 0.5 in the paper). The paper gives no
value of ``n_enf``; we enforce the first 3 of 12 blocks (``enforced_blocks``). The paper does
not say how the hard decision is trained either: here training uses the same hard decision in
the forward pass and a straight-through gradient, ``out = x + (1 - g) (block(x) - x)`` with
``g = hard + p - stopgrad(p)``, so training and inference compute the same function and the
BDM learns from the task loss plus the block sparsity loss of Eq. 2 (``forward_train``
returns the probabilities). Pruning (Sec. 3.3) lives in :mod:`ros_tracker.zoo.abtrack_blocks`.

Deployable form. An input-dependent skip cannot live inside one static ONNX/TensorRT graph,
and precompiling every block sequence would need 2^9 engines. ABTrack is therefore deployed
as *per-block graphs with the decision taken by the runtime between them*
(:mod:`ros_tracker.zoo.abtrack_deploy`):

* template graph (once per target): ``encode_template`` -> template tokens (N, 64, d);
* stem graph (every frame): search patch + position embedding, bypass token, and the
  ``n_enf`` enforced blocks -> tokens (N, 321, d);
* for every gated block i: a decision graph tokens -> p_i (N, 1) (or the runtime evaluates
  the 193-parameter linear layer on token 0 itself, see ``decision_arrays``) and a block graph
  tokens -> tokens, run only when ``p_i <= rho``;
* head graph: tokens -> score_map, offset_map, size_map.

For backends that can only take one per-frame graph, tracing ``track_search`` for export runs
every gated block and selects with ``Where``: the same outputs, without the saving.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ros_tracker.zoo.abtrack_blocks import (
    LAYER_NORM_EPS,
    BypassDecision,
    CenterHead,
    PrunedViTBlock,
    ViTBlock,
    binarize_block,
    dimension_reduction_l1,
    kept_dimensions,
    prune_block,
)
from ros_tracker.zoo.base import TrackerNetwork
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.registry import register_model


@dataclass(frozen=True)
class ABTrackConfig:
    """Architecture of one ABTrack network (defaults: ViT-Tiny / DeiT-Tiny)."""

    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    patch_size: int = 16
    template_size: int = 128
    search_size: int = 256
    enforced_blocks: int = 3  # n_enf: blocks that always run (not stated in the paper)
    bypass_threshold: float = 0.5  # rho: a block is bypassed when p > rho
    head_channels: int = 256  # C of the center head's C, C/2, C/4, C/8 stacks
    pruned_dims: Optional[int] = None  # None: relaxed DR matrices; d*: physically pruned

    @property
    def template_grid(self) -> int:
        return self.template_size // self.patch_size

    @property
    def search_grid(self) -> int:
        return self.search_size // self.patch_size

    @property
    def hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens (named ``patch_embed.proj`` as in timm)."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).flatten(2).transpose(1, 2)


def _exporting() -> bool:
    """True while a graph is being captured: data-dependent Python branches are not allowed."""
    is_exporting = getattr(getattr(torch, "compiler", None), "is_exporting", None)
    return bool(
        torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or (is_exporting is not None and is_exporting())
    )


class ABTrack(TrackerNetwork):
    """ABTrack network; see the module docstring for the bypass rule and deployment."""

    def __init__(self, card: ModelCard, config: ABTrackConfig) -> None:
        super().__init__(card)
        if not 0 < config.enforced_blocks <= config.depth:
            raise ValueError(f"enforced_blocks must be in [1, depth], got {config.enforced_blocks}")
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config.patch_size, dim)
        self.pos_embed_template = nn.Parameter(torch.zeros(1, config.template_grid**2, dim))
        self.pos_embed_search = nn.Parameter(torch.zeros(1, config.search_grid**2, dim))
        self.bypass_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([self._make_block() for _ in range(config.depth)])
        self.decisions = nn.ModuleList(
            [BypassDecision(dim) for _ in range(config.depth - config.enforced_blocks)]
        )
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.head = CenterHead(dim, config.head_channels)
        self._init_weights()

    def _make_block(self) -> nn.Module:
        c = self.config
        if c.pruned_dims is None:
            return ViTBlock(c.embed_dim, c.num_heads, c.hidden_dim)
        return PrunedViTBlock(c.embed_dim, c.num_heads, c.hidden_dim, c.pruned_dims)

    def _init_weights(self) -> None:
        for tensor in (self.pos_embed_template, self.pos_embed_search, self.bypass_token):
            nn.init.trunc_normal_(tensor, std=0.02)
        for block in self.blocks:
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)

    # ---- the two halves of the TrackerNetwork interface -------------------------------

    def encode_template(self, *templates: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Template-only work: patch embedding plus the template position embedding."""
        (template,) = templates
        return (self.patch_embed(template) + self.pos_embed_template,)

    def track_search(self, *state_and_search: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Eager per-frame path: bypassed blocks are not computed (batch-wide skips)."""
        template_tokens, search = state_and_search
        tokens = self.run_stem(template_tokens, search)
        for index in range(len(self.decisions)):
            tokens, _ = self.run_gated_block(index, tokens)
        return self.run_head(tokens)

    # ---- stages (shared by the eager path, training and the deployable graphs) ----------

    def embed_search(self, template_tokens: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        search_tokens = self.patch_embed(search) + self.pos_embed_search
        bypass = self.bypass_token.expand(search.shape[0], -1, -1)
        return torch.cat([bypass, template_tokens, search_tokens], dim=1)

    def run_stem(self, template_tokens: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """Search embedding and the enforced blocks, which always run."""
        tokens = self.embed_search(template_tokens, search)
        for block in self.blocks[: self.config.enforced_blocks]:
            tokens = block(tokens)
        return tokens

    def gated_block(self, index: int) -> nn.Module:
        """The block governed by decision ``index`` (block ``n_enf + index``)."""
        return self.blocks[self.config.enforced_blocks + index]

    def run_gated_block(
        self, index: int, tokens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Decide, then run or bypass one gated block; returns (tokens, bypassed (N,) bool)."""
        probability = self.decisions[index](tokens)
        bypass = probability > self.config.bypass_threshold
        block = self.gated_block(index)
        if _exporting():
            return torch.where(bypass[:, :, None], tokens, block(tokens)), bypass[:, 0]
        if bool(bypass.all()):
            return tokens, bypass[:, 0]
        if not bool(bypass.any()):
            return block(tokens), bypass[:, 0]
        return torch.where(bypass[:, :, None], tokens, block(tokens)), bypass[:, 0]

    def run_head(self, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        grid = self.config.search_grid
        search_tokens = self.norm(tokens)[:, -grid * grid :]
        features = search_tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid, grid)
        return self.head(features)

    # ---- training ---------------------------------------------------------------------

    def forward_train(self, template: torch.Tensor, search: torch.Tensor) -> Dict[str, Any]:
        """Outputs by name plus ``bypass_probs`` (N, gated blocks) for the sparsity loss.

        In training mode the hard decision of inference is used forward and a
        straight-through gradient reaches the BDMs; in eval mode this equals track_search.
        """
        (template_tokens,) = self.encode_template(template)
        tokens = self.run_stem(template_tokens, search)
        probabilities, bypassed = [], []
        for index, decision in enumerate(self.decisions):
            probability = decision(tokens)
            hard = (probability > self.config.bypass_threshold).to(probability.dtype)
            if self.training:
                gate = (hard + (probability - probability.detach()))[:, :, None]  # value: hard
                block_out = self.gated_block(index)(tokens)
                tokens = tokens + (1.0 - gate) * (block_out - tokens)
            else:
                tokens, _ = self.run_gated_block(index, tokens)
            probabilities.append(probability)
            bypassed.append(hard.bool())
        outputs: Dict[str, Any] = dict(zip(self.card.output_names, self.run_head(tokens)))
        outputs["bypass_probs"] = torch.cat(probabilities, dim=1) if probabilities else None
        outputs["bypassed"] = torch.cat(bypassed, dim=1) if bypassed else None
        return outputs

    def dimension_reduction_l1(self) -> torch.Tensor:
        """Eq. 6 without alpha: the L1 norms of all relaxed DR vectors."""
        return dimension_reduction_l1(list(self.blocks))

    # ---- deployment helpers -------------------------------------------------------------

    def decision_arrays(self) -> Dict[str, Any]:
        """BDM weights as numpy arrays, for runtimes that decide on the host.

        ``p_i = sigmoid(weight[i] . tokens[0, 0] + bias[i])``; skip block ``n_enf + i`` when
        ``p_i > threshold``.
        """
        weight = torch.stack([d.linear.weight.detach()[0] for d in self.decisions])
        bias = torch.stack([d.linear.bias.detach()[0] for d in self.decisions])
        return {
            "weight": weight.cpu().numpy(),
            "bias": bias.cpu().numpy(),
            "threshold": float(self.config.bypass_threshold),
            "first_gated_block": int(self.config.enforced_blocks),
        }


# ---- pruning of whole networks --------------------------------------------------------


def binarize_network(model: ABTrack, pruning_ratio: float = 0.3) -> int:
    """Binarize every block's DR vectors at ``pruning_ratio``; returns d* (kept dims)."""
    if model.config.pruned_dims is not None:
        raise ValueError("network is already physically pruned")
    kept = {binarize_block(block, pruning_ratio)[0] for block in model.blocks}
    (value,) = kept
    return value


def prune_network(model: ABTrack) -> ABTrack:
    """A copy of a binarized network with masked dimensions removed (same outputs)."""
    if model.config.pruned_dims is not None:
        raise ValueError("network is already physically pruned")
    pruned_blocks = [prune_block(block) for block in model.blocks]
    kept = {block.attn.kept_inputs.numel() for block in pruned_blocks}
    if len(kept) != 1:
        raise ValueError(f"blocks keep different numbers of dimensions: {sorted(kept)}")
    pruned = copy.deepcopy(model)
    pruned.config = dataclasses.replace(model.config, pruned_dims=kept.pop())
    pruned.blocks = nn.ModuleList(pruned_blocks)
    return pruned


# ---- model cards and registration ----------------------------------------------------

_PAPER = "ABTrack: Adaptively Bypassing Vision Transformer Blocks for Efficient Visual Tracking"

_PER_FRAME = (
    "Per-block graphs, decision taken by the runtime between them: stem (search embedding + "
    "bypass token + the first n_enf blocks, always), then for each gated block i: "
    "p_i = sigmoid(w_i . token0 + b_i) (decision graph or host-side with decision_arrays), "
    "run block graph i only if p_i <= rho; then the head graph. Template graph once per "
    "target. A single traced track_search graph is also correct but computes every block."
)

_POSTPROCESS = (
    "score = sigmoid(score_map) multiplied by a 16x16 Hann window (multiplied, not blended); "
    "(iy, ix) = argmax; cx = (ix + offset_map[0]) / W, cy = (iy + offset_map[1]) / H, "
    "w, h = size_map[:, iy, ix]; all normalised to the search crop. Confidence = the "
    "unwindowed sigmoid score at the peak."
)

_COUNTING = (
    "The paper reports no params or MACs (only FPS), so reference_params/reference_macs are "
    "unset. Measured with counting.py per tracked frame (template encoded once, excluded), "
    "mode 'all' = every MAC incl. attention products, 'layers' in brackets. Unpruned: "
    "8.05 M params (backbone + BDMs 5.55 M, center head 2.49 M with 256 channels); 2.85 G "
    "[2.38 G] MACs with every block run, 1.22 G [1.10 G] with all 9 gated blocks bypassed. "
    "Pruned at ratio 0.3 (d* = 132 of 192): 6.84 M params; 2.39 G [1.99 G] to 1.10 G "
    "[1.00 G] MACs. The head alone is 0.64 G MACs."
)


def _card(name: str, backbone: str) -> ModelCard:
    return ModelCard(
        name=name,
        family="abtrack",
        paper=_PAPER,
        backbone=backbone,
        template_size=128,
        search_size=256,
        template_factor=2.0,
        search_factor=4.0,
        head="center",
        output_names=("score_map", "offset_map", "size_map"),
        template_input_names=("template",),
        template_state_names=("template_tokens",),
        feature_size=16,
        hann_window=True,
        window_influence=0.0,
        postprocess=_POSTPROCESS,
        per_frame=_PER_FRAME,
        counting_note=_COUNTING,
        extra={
            "window_mode": "multiply",
            "bypass_threshold": 0.5,
            "enforced_blocks": 3,
            "pruning_ratio": 0.3,
            "sparsity_tau0": 0.4,
            "sparsity_slope": 0.1,
            "sparsity_weight": 5.0,
            "dr_l1_weight": 1e-4,
            "deployable_form": "per_block_graphs",
        },
    )


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(ABTrackConfig)}


def build_abtrack(card: ModelCard, **overrides: Any) -> ABTrack:
    """Builder behind both entries; overrides are ABTrackConfig fields, plus ``pruned=True``
    (with optional ``pruning_ratio``) for the physically pruned layout of a trained model."""
    pruned = bool(overrides.pop("pruned", False))
    ratio = float(overrides.pop("pruning_ratio", card.extra.get("pruning_ratio", 0.3)))
    unknown = sorted(set(overrides) - _CONFIG_FIELDS)
    if unknown:
        raise TypeError(f"unknown ABTrack options {unknown}; known: {sorted(_CONFIG_FIELDS)}")
    config = ABTrackConfig(**overrides)
    if pruned and config.pruned_dims is None:
        kept = kept_dimensions(config.embed_dim, config.num_heads, ratio)
        config = dataclasses.replace(config, pruned_dims=kept)
    card = card.replace(
        template_size=config.template_size,
        search_size=config.search_size,
        feature_size=config.search_grid,
        extra=dict(
            card.extra,
            enforced_blocks=config.enforced_blocks,
            bypass_threshold=config.bypass_threshold,
        ),
    )
    return ABTrack(card, config)


ABTRACK_VIT_TINY = _card("abtrack_vit_tiny", "ViT-Tiny/16 (timm vit_tiny_patch16_224 layout)")
ABTRACK_DEIT_TINY = _card("abtrack_deit_tiny", "DeiT-Tiny/16 (timm deit_tiny_patch16_224 layout)")
# The paper's headline model (ABTrack-AViT, Table 1). A-ViT-T (Yin et al., CVPR 2022) is the
# DeiT-Tiny architecture fine-tuned for adaptive token halting, which adds no parameters (a
# token halts on a fixed sigmoid of its first channel): the backbone is DeiT-Tiny's,
# initialised from A-ViT-T's ImageNet weights (NVlabs/A-ViT ``tiny-10-30.pth``, timm key
# layout). The paper does not say whether token halting also runs inside the tracker; it
# does not here (block bypassing and pruning as for the other entries).
ABTRACK_AVIT_TINY = _card(
    "abtrack_avit_tiny",
    "A-ViT-Tiny/16 (DeiT-Tiny architecture, A-ViT-T ImageNet weights in timm layout)",
).replace(
    extra=dict(
        ABTRACK_DEIT_TINY.extra,
        backbone_weights=(
            "NVlabs/A-ViT a-vit-weights/tiny-10-30.pth (CC-BY-NC-SA-4.0: non-commercial; "
            "weights trained from it inherit the licence)"
        ),
        token_halting="not run (A-ViT's adaptive token halting is not part of the tracker)",
    )
)


@register_model(ABTRACK_VIT_TINY)
def abtrack_vit_tiny(card: ModelCard, **overrides: Any) -> ABTrack:
    return build_abtrack(card, **overrides)


@register_model(ABTRACK_DEIT_TINY)
def abtrack_deit_tiny(card: ModelCard, **overrides: Any) -> ABTrack:
    return build_abtrack(card, **overrides)


@register_model(ABTRACK_AVIT_TINY)
def abtrack_avit_tiny(card: ModelCard, **overrides: Any) -> ABTrack:
    return build_abtrack(card, **overrides)


TINY_TEST_CONFIG: Dict[str, Any] = dict(
    embed_dim=24,
    depth=4,
    num_heads=3,
    template_size=32,
    search_size=64,
    enforced_blocks=1,
    head_channels=16,
)
"""Overrides for a network small enough for unit tests (2x2 template, 4x4 search grid)."""

__all__: List[str] = [
    "ABTRACK_AVIT_TINY",
    "ABTRACK_DEIT_TINY",
    "ABTRACK_VIT_TINY",
    "ABTrack",
    "ABTrackConfig",
    "TINY_TEST_CONFIG",
    "binarize_network",
    "build_abtrack",
    "prune_network",
]
