"""HCAT release checkpoints (chenxin-dlut/HCAT, ``checkpoint['net']``) -> ``hcat`` weights.

The authors' network (TransT's layout) keeps its transformer in ``featurefusion_network``:
``encoder.query_layer`` (feature sparsification), ``encoder.layers.<i>`` (the HCA layers,
``multihead_attn2`` = search attends to the sparse template, ``multihead_attn1`` = the
template attends to the new search), ``decoder.layers.0`` + ``decoder.norm`` (the final
CFA and its LayerNorm); then ``class_embed`` / ``bbox_embed`` (3-layer MLPs),
``query_embed`` (the S sparse vectors), ``input_proj`` and ``backbone.0.body`` (ResNet-18 up
to layer3). Re-layout:

* ``nn.MultiheadAttention``'s packed ``in_proj_weight`` / ``in_proj_bias`` are split into
  our separate query, key and value projections (rows q, k, v);
* their two-way classifier (``softmax(logits)[..., 0]`` is the target) is folded into our
  single logit: ``sigmoid(l0 - l1) = softmax(l0, l1)[0]``, so the last layer's weights and
  bias become the difference of their two rows.

The converted network uses ``sparse_residual="doubled"`` (the authors' code, see
``ros_tracker.zoo.hcat.FeatureSparsification``) and the card the authors' test-time settings:
SiamFC context crops with channel-mean padding, window influence 0.42 (their
``pysot_toolkit/test.py``), the window-blended score as the confidence.
"""

from __future__ import annotations

import re
from typing import Any, Dict

import torch

from ros_tracker.zoo.authors.mapping import LINEAR_TENSORS, OPTIONAL_SUFFIX, StateMap
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.hcat import HCATNetwork

MODELS = ("hcat", "hcat_n1")
RELEASE_FILES = {"hcat": "res18_N2_q16.pth", "hcat_n1": "res18_N1_q16.pth"}
SOURCE = "https://github.com/chenxin-dlut/HCAT (trained models: Google Drive folder in its README)"
LICENSE = (
    "Released by the HCAT authors (chenxin-dlut/HCAT) without a licence file or licence "
    "statement in the repository or on the download page: all rights reserved by the authors "
    "unless they state otherwise; ask them before redistributing the weights or this "
    "conversion. The code base it builds on (PyTracking, TransT) is GPL-3.0."
)
WINDOW_INFLUENCE = 0.42  # pysot_toolkit/test.py (their Tracker's default is 0.49)
FORMS = (
    "authors' code: sparse-template residual doubled (sparse_residual='doubled'; the paper's "
    "Eq. 2 adds the attention output to the sparse vectors, 'query', the default for training "
    "from scratch); two-way classifier folded into one logit (exact); SiamFC context crops, "
    "window influence 0.42, reported confidence = window-blended score"
)
_BACKBONE = "backbone.0.body."
_FUSION = "featurefusion_network."


def overrides(state: Dict[str, torch.Tensor], model: str) -> Dict[str, Any]:
    return {"sparse_residual": "doubled"}


def converted_card(card: ModelCard) -> ModelCard:
    extra = dict(card.extra, sparse_residual="doubled")
    extra.update(release=RELEASE_FILES[card.name], source=SOURCE, forms=FORMS)
    return card.replace(
        window_influence=WINDOW_INFLUENCE,
        crop_style="siamfc",
        reported_score="windowed",
        weights=None,
        weights_license=LICENSE,
        postprocess=card.postprocess.replace(
            "reported confidence = score.", "reported confidence = score' at the pick (theirs)."
        ),
        extra=extra,
    )


def _attention(state: StateMap, source: str, target: str) -> None:
    """Packed nn.MultiheadAttention -> separate query / key / value / output layers."""
    weight = state.take(source + "in_proj_weight")
    bias = state.take(source + "in_proj_bias")
    if weight.numel() and bias.numel():
        if weight.shape[0] % 3 or bias.shape[0] != weight.shape[0]:
            state.shapes.append(
                f"{source}in_proj_weight {tuple(weight.shape)} / in_proj_bias "
                f"{tuple(bias.shape)} are not three stacked projections"
            )
        else:
            for name, w, b in zip(
                ("query", "key", "value"), weight.chunk(3, dim=0), bias.chunk(3, dim=0)
            ):
                state.put(f"{target}{name}.weight", w, source + "in_proj_weight")
                state.put(f"{target}{name}.bias", b, source + "in_proj_bias")
    state.copy_prefix(source + "out_proj.", target + "output.", LINEAR_TENSORS)


def _cfa(state: StateMap, source: str, target: str, attention: str, names: Dict[str, str]):
    """One cross-feature-augment block: attention, its norm, FFN, its norm."""
    _attention(state, source + attention + ".", target + "attention.")
    state.copy_prefix(
        source + names["norm_attention"] + ".", target + "attention_norm.", LINEAR_TENSORS
    )
    state.copy_prefix(source + names["expand"] + ".", target + "ffn.expand.", LINEAR_TENSORS)
    state.copy_prefix(source + names["reduce"] + ".", target + "ffn.reduce.", LINEAR_TENSORS)
    state.copy_prefix(source + names["norm_ffn"] + ".", target + "ffn_norm.", LINEAR_TENSORS)


def authors_trunk_key(ours: str) -> str:
    """The authors' (torchvision) name of one of our ResNet trunk tensors."""
    match = re.match(r"^stem\.(conv|norm)\.(.+)$", ours)
    if match:
        return ("conv1." if match.group(1) == "conv" else "bn1.") + match.group(2)
    match = re.match(r"^stages\.(\d+)\.(\d+)\.(.+?)\.([^.]+)$", ours)
    if not match:
        raise KeyError(ours)
    stage, block, module, tensor = match.groups()
    module = {
        "shortcut.conv": "downsample.0",
        "shortcut.norm": "downsample.1",
        "norm1": "bn1",
        "norm2": "bn2",
    }.get(module, module)
    return f"layer{int(stage) + 1}.{block}.{module}.{tensor}"


def _backbone(state: StateMap, network: HCATNetwork) -> None:
    """Every tensor of our trunk from its torchvision-named source under backbone.0.body."""
    for ours in network.backbone.state_dict():
        source = _BACKBONE + authors_trunk_key(ours)
        if ours.endswith(OPTIONAL_SUFFIX) and not state.has(source):
            continue
        state.copy(source, "backbone." + ours)


def convert_state(
    state_in: Dict[str, torch.Tensor], network: HCATNetwork
) -> Dict[str, torch.Tensor]:
    """The authors' HCAT state dict -> ``network``'s state dict (CheckpointMismatch if not)."""
    state = StateMap(state_in, network.state_dict())
    _backbone(state, network)
    state.copy_prefix("input_proj.", "input_proj.", LINEAR_TENSORS)
    state.copy("query_embed.weight", "sparsify.sparse_vectors")
    query = _FUSION + "encoder.query_layer."
    _attention(state, query + "multihead_attn.", "sparsify.attention.")
    state.copy_prefix(query + "norm.", "sparsify.norm.", LINEAR_TENSORS)
    for index in range(len(network.layers)):
        source = f"{_FUSION}encoder.layers.{index}."
        target = f"layers.{index}."
        search = {"norm_attention": "norm22", "expand": "linear21", "reduce": "linear22"}
        search["norm_ffn"] = "norm23"
        _cfa(state, source, target + "search_branch.", "multihead_attn2", search)
        template = {"norm_attention": "norm12", "expand": "linear11", "reduce": "linear12"}
        template["norm_ffn"] = "norm13"
        _cfa(state, source, target + "template_branch.", "multihead_attn1", template)
    decoder = {"norm_attention": "norm1", "expand": "linear1", "reduce": "linear2"}
    decoder["norm_ffn"] = "norm2"
    _cfa(state, _FUSION + "decoder.layers.0.", "decoder.", "multihead_attn", decoder)
    state.copy_prefix(_FUSION + "decoder.norm.", "output_norm.", LINEAR_TENSORS)
    last = len(network.class_head.layers) - 1
    for layer in range(last):
        state.copy_prefix(
            f"class_embed.layers.{layer}.", f"class_head.layers.{layer}.", LINEAR_TENSORS
        )
    for name in LINEAR_TENSORS:
        key = f"class_embed.layers.{last}.{name}"
        two_way = state.take(key)
        if two_way.numel() and two_way.shape[0] != 2:
            state.shapes.append(f"{key}: {tuple(two_way.shape)}, expected 2 classes")
        elif two_way.numel():
            state.put(f"class_head.layers.{last}.{name}", (two_way[0] - two_way[1])[None], key)
    for layer in range(len(network.box_head.layers)):
        state.copy_prefix(
            f"bbox_embed.layers.{layer}.", f"box_head.layers.{layer}.", LINEAR_TENSORS
        )
    return state.finish()


__all__ = ["MODELS", "convert_state", "converted_card", "overrides"]
