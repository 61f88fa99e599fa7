"""MixFormerV2 release checkpoints (MCG-NJU/MixFormerV2, ``checkpoint['net']``) ->
``mixformerv2_b`` / ``mixformerv2_s`` weights.

The authors' ``backbone`` is a timm-style ViT whose blocks carry the same names as ours
(``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``); its position
embeddings ``pos_embed_t`` (both templates) and ``pos_embed_s`` are stored parameters and
are loaded as they are. Re-layout:

* the four prediction tokens: their ``reg_tokens`` plus ``pos_embed_reg`` is added once at
  the input, so the sum becomes our ``prediction_tokens``; their tokens unbind as (left,
  right, top, bottom) while our rows are (x1, y1, x2, y2) = (left, top, right, bottom), so
  rows 1 and 2 swap (attention treats the prediction tokens as a set: the order changes no
  other output);
* ``box_head.layers.{0,1}.{0,1}`` (Linear, LayerNorm) -> our flat ``box_head.layers`` (the
  ReLU sits at index 2); ``score_head.layers.0.0`` / ``.1`` -> ``score_head.layers.0`` /
  ``.2``; the number of bins is read from the file (``MODEL.FEAT_SZ``).

The converted network scores each prediction token and averages the logits
(``score_pooling="per_token"``, the authors' code); the card decodes bins at i / bins
(``coordinate_offset`` 0.0) and swaps the online template every 200 frames (their LaSOT
setting, the paper's default) with score threshold 0.5.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from ros_tracker.zoo.authors.mapping import LINEAR_TENSORS, StateMap
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.mixformerv2 import MixFormerV2

MODELS = ("mixformerv2_b", "mixformerv2_s")
RELEASE_FILES = {
    "mixformerv2_b": (
        "mixformerv2_base.pth.tar (experiments/mixformer2_vit_online/288_depth8_score)"
    ),
    "mixformerv2_s": (
        "mixformerv2_small.pth.tar (experiments/mixformer2_vit_online/224_depth4_mlp1_score)"
    ),
}
SOURCE = "https://github.com/MCG-NJU/MixFormerV2 (models: download links in its README)"
LICENSE = (
    "MIT (MCG-NJU/MixFormerV2, Copyright (c) 2021 Multimedia Research): the repository's "
    "licence; the released weights are distributed with it under the same terms."
)
UPDATE_INTERVAL = 200  # paper Sec. 4.1 and their LaSOT setting
UPDATE_THRESHOLD = 0.5
FORMS = (
    "authors' code: score MLP per prediction token, logits averaged (score_pooling="
    "'per_token'; the paper's mean-token form, 'mean_token', is the default for training from "
    "scratch); bins read at i / bins (coordinate_offset 0.0); position embeddings as released; "
    "online template every 200 frames above score 0.5 (online size 1)"
)
# Our prediction-token row -> the authors' reg token (they unbind l, r, t, b).
TOKEN_ORDER = (0, 2, 1, 3)


def overrides(state: Dict[str, torch.Tensor], model: str) -> Dict[str, Any]:
    """Builder overrides: the authors' score pooling and the file's number of bins."""
    values: Dict[str, Any] = {"score_pooling": "per_token"}
    bins = state.get("box_head.layers.1.0.weight")
    if bins is not None and bins.dim() == 2:
        values["bins"] = int(bins.shape[0])
    return values


def converted_card(card: ModelCard) -> ModelCard:
    return card.replace(
        coordinate_offset=0.0,
        template_update_interval=UPDATE_INTERVAL,
        template_update_threshold=UPDATE_THRESHOLD,
        crop_style="stark",
        weights=None,
        weights_license=LICENSE,
        postprocess=card.postprocess.replace("(i + 0.5) / bins", "i / bins"),
        extra=dict(card.extra, release=RELEASE_FILES[card.name], source=SOURCE, forms=FORMS),
    )


def convert_state(
    state_in: Dict[str, torch.Tensor], network: MixFormerV2
) -> Dict[str, torch.Tensor]:
    """The authors' MixFormerV2 state dict -> ``network``'s (CheckpointMismatch if not)."""
    state = StateMap(state_in, network.state_dict())
    state.copy("backbone.pos_embed_t", "pos_embed_template")
    state.copy("backbone.pos_embed_s", "pos_embed_search")
    tokens = state.take("backbone.reg_tokens")
    positions = state.take("backbone.pos_embed_reg")
    if tokens.numel() and positions.numel():
        if tokens.shape != positions.shape or tokens.shape[1] != len(TOKEN_ORDER):
            state.shapes.append(
                f"backbone.reg_tokens {tuple(tokens.shape)} / backbone.pos_embed_reg "
                f"{tuple(positions.shape)}: expected two (1, 4, C) tensors"
            )
        else:
            summed = (tokens + positions)[:, list(TOKEN_ORDER)]
            state.put("prediction_tokens", summed, "backbone.reg_tokens")
    state.copy_prefix("backbone.patch_embed.proj.", "patch_embed.proj.", LINEAR_TENSORS)
    block_parts = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
    for index in range(len(network.blocks)):
        for part in block_parts:
            state.copy_prefix(
                f"backbone.blocks.{index}.{part}.", f"blocks.{index}.{part}.", LINEAR_TENSORS
            )
    for source, target in (("0.0", "0"), ("0.1", "1"), ("1.0", "3"), ("1.1", "4")):
        state.copy_prefix(
            f"box_head.layers.{source}.", f"box_head.layers.{target}.", LINEAR_TENSORS
        )
    state.copy_prefix("score_head.layers.0.0.", "score_head.layers.0.", LINEAR_TENSORS)
    state.copy_prefix("score_head.layers.1.", "score_head.layers.2.", LINEAR_TENSORS)
    return state.finish()
