"""HiT release checkpoints (kangben258/HiT, ``checkpoint['net']``) -> ``hit_*`` weights.

The authors' network is a STARK-style ``backbone.body`` (LeViT as one ``blocks`` sequence of
residual attention / MLP blocks and two ``AttentionSubsample`` blocks), a ``bottleneck``
(the Bridge Module's transposed convolutions and the two linear projections) and a
``box_head`` (STARK's corner predictor). Every tensor is mapped by name onto ours:

* ``Conv2d_BN`` / ``Linear_BN`` (``c.weight`` + ``bn.*``) -> our ConvNorm / LinearNorm
  (``conv``/``linear.weight`` + ``bn.*``): the BatchNorms stay unfolded in the weights file,
  as in the release; ``hit.fold_batchnorm`` folds them the way the authors' tracker does;
* ``attention_biases`` (heads, unique offsets) indexed by the stored ``attention_bias_idxs``
  -> our dense (heads, plane, plane) table: every (query, key) pair must read the same value
  through both, which checks that the two dual-image layouts agree;
* ``bottleneck.layers.{0,1}`` -> ``bridge.up_min`` / ``up_mid``; ``bottleneck.proj1/2`` ->
  ``head.feature_proj`` / ``head.global_proj``; ``box_head.conv{1-4}_{tl,br}`` ->
  ``head.{top_left,bottom_right}.layers.{0-3}``, ``conv5_*`` -> ``.score``.

Decoding: the authors' soft-argmax puts each cell's coordinate at its corner (index * 16 /
256), so the converted card sets ``coordinate_offset`` 0.0 (our own training uses cell
centres, 0.5).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch

from ros_tracker.zoo.authors.mapping import LINEAR_TENSORS, StateMap, copy_batchnorm
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.hit import HiT

MODELS = ("hit_base", "hit_small", "hit_tiny")
RELEASE_FILES = {
    "hit_base": "HiT_Base: VT_ep1500.pth.tar (checkpoints/train/HiT/HiT_Base/)",
    "hit_small": "HiT_Small: VT_ep1500.pth.tar (checkpoints/train/HiT/HiT_Small/)",
    "hit_tiny": "HiT_Tiny: VT_ep1500.pth.tar (checkpoints/train/HiT/HiT_Tiny/)",
}
SOURCE = "https://github.com/kangben258/HiT (trained models: Google Drive folder in its README)"
LICENSE = (
    "Released by the HiT authors (kangben258/HiT) without a licence file or licence statement "
    "in the repository or on the download page: all rights reserved by the authors unless "
    "they state otherwise; ask them before redistributing the weights or this conversion."
)
FORMS = (
    "authors' code throughout (the paper leaves these open): global token = mean of all "
    "final-stage tokens; corner coordinates at cell corners (coordinate_offset 0.0); STARK "
    "pixel crops (crop_style 'stark'); the LeViT Conv/Linear+BatchNorm pairs run unfolded "
    "(their tracker folds them first: the two agree within 1.3e-5 on the box)"
)


def overrides(state: Dict[str, torch.Tensor], model: str) -> Dict[str, Any]:
    """Builder overrides for this release: none (the zoo entries are the authors' sizes)."""
    return {}


def converted_card(card: ModelCard) -> ModelCard:
    """The zoo card with the authors' test-time settings."""
    return card.replace(
        coordinate_offset=0.0,
        crop_style="stark",
        weights=None,
        weights_license=LICENSE,
        postprocess=card.postprocess.replace(
            "cell centres ((i + 0.5) / W, (j + 0.5) / H)", "cell corners (i / W, j / H)"
        ),
        extra=dict(card.extra, release=RELEASE_FILES[card.name], source=SOURCE, forms=FORMS),
    )


def _authors_blocks(depths: Tuple[int, int, int]) -> List[Tuple[str, str]]:
    """(authors' block index, our module path) in the order of their ``blocks`` sequence.

    Kinds: ``attn`` / ``mlp`` of stage blocks, ``shrink`` (AttentionSubsample) and
    ``shrink_mlp`` (the residual MLP after it).
    """
    order: List[Tuple[str, str]] = []
    for stage, depth in enumerate(depths):
        if stage > 0:
            order.append(("shrink", f"backbone.stages.{stage}.shrink.attn"))
            order.append(("mlp", f"backbone.stages.{stage}.shrink.mlp"))
        for block in range(depth):
            order.append(("attn", f"backbone.stages.{stage}.blocks.{block}.attn"))
            order.append(("mlp", f"backbone.stages.{stage}.blocks.{block}.mlp"))
    return order


def _linear_bn(state: StateMap, source: str, target: str) -> None:
    state.copy(source + "c.weight", target + "linear.weight")
    copy_batchnorm(state, source + "bn.", target + "bn.")


def _bias_table(state: StateMap, source: str, target: str, network: HiT) -> None:
    """Authors' (heads, offsets) biases + index -> our dense (heads, E, E) table."""
    biases = state.take(source + "attention_biases")
    index = state.take(source + "attention_bias_idxs")
    module = network.get_submodule(target)
    ours = module.index  # (queries, keys) flat index into our table
    table = torch.zeros_like(module.table)
    key = target + ".table"
    if biases.numel() == 0 or index.numel() == 0:
        return  # missing in the file: reported by StateMap
    if tuple(index.shape) != tuple(ours.shape) or biases.shape[0] != table.shape[0]:
        state.shapes.append(
            f"{source}attention_biases/attention_bias_idxs: index {tuple(index.shape)}, "
            f"biases {tuple(biases.shape)}; network pairs {tuple(ours.shape)}, "
            f"heads {table.shape[0]}"
        )
        return
    flat = table.flatten(1)
    cells = ours.flatten()
    theirs = index.flatten().long()
    if int(theirs.max()) >= biases.shape[1]:
        state.shapes.append(f"{source}attention_bias_idxs points past its bias table")
        return
    flat[:, cells] = biases[:, theirs]
    # Every pair must read the same bias through our index as through theirs.
    if not torch.equal(flat[:, cells], biases[:, theirs]):
        state.shapes.append(
            f"{source}attention_bias_idxs: the authors' position offsets do not match the "
            f"dual-image layout of {target}"
        )
        return
    state.put(key, flat.view_as(table), source + "attention_biases")


def convert_state(state_in: Dict[str, torch.Tensor], network: HiT) -> Dict[str, torch.Tensor]:
    """The authors' HiT state dict -> ``network``'s state dict (CheckpointMismatch if not)."""
    state = StateMap(state_in, network.state_dict())
    body = "backbone.body."
    for index, ours in enumerate(("conv1", "conv2", "conv3", "conv4")):
        source = f"{body}patch_embed.{2 * index}."
        state.copy(source + "c.weight", f"backbone.stem.{ours}.conv.weight")
        copy_batchnorm(state, source + "bn.", f"backbone.stem.{ours}.bn.")
    for position, (kind, target) in enumerate(_authors_blocks(network.config.backbone.depths)):
        source = f"{body}blocks.{position}."
        if kind == "attn":
            _linear_bn(state, source + "m.qkv.", target + ".qkv.")
            _linear_bn(state, source + "m.proj.1.", target + ".proj.")
            _bias_table(state, source + "m.", target + ".bias", network)
        elif kind == "mlp":
            _linear_bn(state, source + "m.0.", target + ".ln1.")
            _linear_bn(state, source + "m.2.", target + ".ln2.")
        else:
            _linear_bn(state, source + "kv.", target + ".kv.")
            _linear_bn(state, source + "q.1.", target + ".q.")
            _linear_bn(state, source + "proj.1.", target + ".proj.")
            _bias_table(state, source, target + ".bias", network)
    for index, ours in enumerate(("up_min", "up_mid")):
        source = f"bottleneck.layers.{index}."
        state.copy_prefix(source + "0.", f"bridge.{ours}.deconv.", LINEAR_TENSORS)
        copy_batchnorm(state, source + "1.", f"bridge.{ours}.bn.")
    state.copy_prefix("bottleneck.proj1.", "head.feature_proj.", LINEAR_TENSORS)
    state.copy_prefix("bottleneck.proj2.", "head.global_proj.", LINEAR_TENSORS)
    for corner, tower in (("tl", "top_left"), ("br", "bottom_right")):
        for layer in range(4):
            source = f"box_head.conv{layer + 1}_{corner}."
            target = f"head.{tower}.layers.{layer}."
            state.copy_prefix(source + "0.", target + "0.", LINEAR_TENSORS)
            copy_batchnorm(state, source + "1.", target + "1.")
        state.copy_prefix(f"box_head.conv5_{corner}.", f"head.{tower}.score.", LINEAR_TENSORS)
    return state.finish()
