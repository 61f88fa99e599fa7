"""Release checkpoints of the variants no parity fixture covers: hcat_n1, hit_small, hit_base,
mixformerv2_b, converted with the same code path as ``ros-tracker convert``.

Each checkpoint is built here in the authors' release layout, keys named as the authors' code
names them (their module structure, written out below in their terms: LeViT's ``blocks``
sequence with its dual-image bias enumeration, TransT's ``featurefusion_network`` with packed
``nn.MultiheadAttention``, MixFormerV2's timm-style ViT) and filled with seeded random tensors
of the shapes the network has. The layout is checked against the manifest of the sibling
model's parity fixture (same code, other size), so the variants' files are named as the
authors' would be. The conversion must use every tensor, fill every network tensor, load
strictly into the zoo network, and carry every value over: unchanged where the map is
one-to-one, by the documented re-layout elsewhere (dense dual-image bias tables, split q/k/v
projections, the folded two-way classifier, the summed and reordered prediction tokens).
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import pytest
import torch
from safetensors.torch import load_file

from ros_tracker.zoo.authors.convert import convert_release
from ros_tracker.zoo.authors.mapping import StateMap
from ros_tracker.zoo.registry import create_model

from . import parity_fixtures as fx
from .release_files import write_release

MODELS = ["hcat_n1", "hit_small", "hit_base", "mixformerv2_b"]
SIBLINGS = ["hcat", "hit_tiny", "mixformerv2_s"]  # the models with parity fixtures
TRAINERS = {"hcat": "pytracking", "hit": "stark", "mixformerv2": "stark"}
# One required key per variant, from the part of the network that differs from its sibling.
DROPPED = {
    "hcat_n1": "featurefusion_network.encoder.layers.0.multihead_attn1.in_proj_weight",
    "hit_small": "backbone.body.blocks.26.m.attention_biases",  # last stage-3 attention
    "hit_base": "backbone.body.blocks.18.attention_bias_idxs",  # second AttentionSubsample
    "mixformerv2_b": "backbone.blocks.7.mlp.fc2.weight",  # the eighth (last) block
}


def family(model: str) -> str:
    return model.split("_")[0]


# -- the authors' layout ----------------------------------------------------------------------


@dataclass
class Release:
    """A state dict in the authors' layout and what the conversion must make of it."""

    state: collections.OrderedDict[str, torch.Tensor] = field(
        default_factory=collections.OrderedDict
    )
    # our key -> the tensor the converted weights must hold (exactly)
    expected: Dict[str, torch.Tensor] = field(default_factory=dict)
    # our bias-table key -> (authors' biases, authors' index, their offset -> column)
    bias_tables: Dict[str, Tuple[torch.Tensor, torch.Tensor, Dict[Tuple[int, int], int]]] = field(
        default_factory=dict
    )


class Builder:
    """Adds the authors' tensors, shaped from our network's, with seeded random values."""

    def __init__(self, network: torch.nn.Module, seed: int) -> None:
        self.ours = network.state_dict()
        self.generator = torch.Generator().manual_seed(seed)
        self.release = Release()

    def value(self, key: str, shape) -> torch.Tensor:
        if key.endswith("num_batches_tracked"):
            return torch.randint(1, 10_000, (), generator=self.generator, dtype=torch.int64)
        tensor = torch.randn(tuple(shape), generator=self.generator)
        if key.endswith("running_var"):
            return tensor.abs() + 0.5
        return tensor

    def add(self, authors: str, shape) -> torch.Tensor:
        assert authors not in self.release.state, authors
        tensor = self.value(authors, shape)
        self.release.state[authors] = tensor
        return tensor

    def copy(self, authors: str, ours: str) -> None:
        """A tensor the map carries over one-to-one."""
        self.release.expected[ours] = self.add(authors, self.ours[ours].shape)

    def module(self, authors: str, ours: str, names=("weight", "bias")) -> None:
        for name in names:
            self.copy(authors + name, ours + name)

    def batchnorm(self, authors: str, ours: str) -> None:
        names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        self.module(authors, ours, names)


# HiT (kangben258/HiT lib/models/HiT/levit.py, LeViT with pos "ori_pos", one template) -------


def dual_image_offsets(
    res_x: int, res_z: int, stride: int = 1
) -> Tuple[Dict[Tuple[int, int], int], torch.Tensor]:
    """The authors' attention-bias enumeration: offset -> column in order of first
    appearance, and the (queries, keys) ``attention_bias_idxs``. Search grid at the origin,
    the template at rows / cols [res_x, res_x + res_z); ``stride`` 2 for AttentionSubsample,
    whose queries are the subsampled grids ((res - 1) // stride + 1 a side)."""

    def points(search: int, template: int):
        grid = list(itertools.product(range(search), range(search)))
        span = range(search, search + template)
        return grid + list(itertools.product(span, span))

    keys = points(res_x, res_z)
    queries = points((res_x - 1) // stride + 1, (res_z - 1) // stride + 1)
    offsets: Dict[Tuple[int, int], int] = {}
    idxs: List[int] = []
    for p1 in queries:
        for p2 in keys:
            offset = (abs(p1[0] * stride - p2[0]), abs(p1[1] * stride - p2[1]))
            if offset not in offsets:
                offsets[offset] = len(offsets)
            idxs.append(offsets[offset])
    return offsets, torch.tensor(idxs, dtype=torch.int64).view(len(queries), len(keys))


def hit_release(network, seed: int) -> Release:
    build = Builder(network, seed)
    body = "backbone.body."

    def linear_bn(authors: str, ours: str) -> None:
        build.copy(authors + "c.weight", ours + "linear.weight")
        build.batchnorm(authors + "bn.", ours + "bn.")

    def biases(authors: str, ours: str, res_x: int, res_z: int, stride: int = 1) -> None:
        offsets, idxs = dual_image_offsets(res_x, res_z, stride)
        heads = build.ours[ours].shape[0]
        table = build.add(authors + "attention_biases", (heads, len(offsets)))
        build.release.state[authors + "attention_bias_idxs"] = idxs
        build.release.bias_tables[ours] = (table, idxs, offsets)

    for index, conv in enumerate(("conv1", "conv2", "conv3", "conv4")):  # b16: Conv2d_BN at 0-6
        build.copy(f"{body}patch_embed.{2 * index}.c.weight", f"backbone.stem.{conv}.conv.weight")
        build.batchnorm(f"{body}patch_embed.{2 * index}.bn.", f"backbone.stem.{conv}.bn.")
    config = network.config
    res_x, res_z = config.search_size // 16, config.template_size // 16
    blocks = itertools.count()  # LeViT.blocks: one nn.Sequential over all stages
    for stage, depth in enumerate(config.backbone.depths):
        for block in range(depth):
            ours = f"backbone.stages.{stage}.blocks.{block}."
            attention = f"{body}blocks.{next(blocks)}.m."  # Residual(Attention)
            biases(attention, ours + "attn.bias.table", res_x, res_z)
            linear_bn(attention + "qkv.", ours + "attn.qkv.")
            linear_bn(attention + "proj.1.", ours + "attn.proj.")
            mlp = f"{body}blocks.{next(blocks)}.m."  # Residual(Linear_BN, act, Linear_BN)
            linear_bn(mlp + "0.", ours + "mlp.ln1.")
            linear_bn(mlp + "2.", ours + "mlp.ln2.")
        if stage < 2:  # AttentionSubsample, then its residual MLP
            ours = f"backbone.stages.{stage + 1}.shrink."
            subsample = f"{body}blocks.{next(blocks)}."
            biases(subsample, ours + "attn.bias.table", res_x, res_z, stride=2)
            linear_bn(subsample + "kv.", ours + "attn.kv.")
            linear_bn(subsample + "q.1.", ours + "attn.q.")
            linear_bn(subsample + "proj.1.", ours + "attn.proj.")
            res_x, res_z = (res_x - 1) // 2 + 1, (res_z - 1) // 2 + 1
            mlp = f"{body}blocks.{next(blocks)}.m."
            linear_bn(mlp + "0.", ours + "mlp.ln1.")
            linear_bn(mlp + "2.", ours + "mlp.ln2.")
    for corner, tower in (("tl", "top_left"), ("br", "bottom_right")):  # STARK Corner_Predictor
        for layer in range(1, 5):
            build.module(f"box_head.conv{layer}_{corner}.0.", f"head.{tower}.layers.{layer - 1}.0.")
            build.batchnorm(
                f"box_head.conv{layer}_{corner}.1.", f"head.{tower}.layers.{layer - 1}.1."
            )
        build.module(f"box_head.conv5_{corner}.", f"head.{tower}.score.")
    for layer, ours in enumerate(("up_min", "up_mid")):  # neck FB: ConvTranspose2d + BN
        build.module(f"bottleneck.layers.{layer}.0.", f"bridge.{ours}.deconv.")
        build.batchnorm(f"bottleneck.layers.{layer}.1.", f"bridge.{ours}.bn.")
    build.module("bottleneck.proj1.", "head.feature_proj.")
    build.module("bottleneck.proj2.", "head.global_proj.")
    return build.release


# HCAT (chenxin-dlut/HCAT, TransT layout, torchvision ResNet-18 to layer3) -------------------


def hcat_release(network, seed: int) -> Release:
    build = Builder(network, seed)
    fusion = "featurefusion_network."

    def packed_attention(authors: str, ours: str) -> None:
        """nn.MultiheadAttention: in_proj rows are q, k, v."""
        width = build.ours[ours + "query.weight"].shape[0]
        weight = build.add(authors + "in_proj_weight", (3 * width, width))
        bias = build.add(authors + "in_proj_bias", (3 * width,))
        for row, name in enumerate(("query", "key", "value")):
            rows = slice(row * width, (row + 1) * width)
            build.release.expected[f"{ours}{name}.weight"] = weight[rows]
            build.release.expected[f"{ours}{name}.bias"] = bias[rows]
        build.module(authors + "out_proj.", ours + "output.")

    for layer in range(len(network.layers)):  # FeatureFusionLayer
        source, ours = f"{fusion}encoder.layers.{layer}.", f"layers.{layer}."
        packed_attention(source + "multihead_attn1.", ours + "template_branch.attention.")
        packed_attention(source + "multihead_attn2.", ours + "search_branch.attention.")
        build.module(source + "linear11.", ours + "template_branch.ffn.expand.")
        build.module(source + "linear12.", ours + "template_branch.ffn.reduce.")
        build.module(source + "linear21.", ours + "search_branch.ffn.expand.")
        build.module(source + "linear22.", ours + "search_branch.ffn.reduce.")
        build.module(source + "norm12.", ours + "template_branch.attention_norm.")
        build.module(source + "norm13.", ours + "template_branch.ffn_norm.")
        build.module(source + "norm22.", ours + "search_branch.attention_norm.")
        build.module(source + "norm23.", ours + "search_branch.ffn_norm.")
    packed_attention(fusion + "encoder.query_layer.multihead_attn.", "sparsify.attention.")
    build.module(fusion + "encoder.query_layer.norm.", "sparsify.norm.")
    decoder = fusion + "decoder.layers.0."
    packed_attention(decoder + "multihead_attn.", "decoder.attention.")
    build.module(decoder + "linear1.", "decoder.ffn.expand.")
    build.module(decoder + "linear2.", "decoder.ffn.reduce.")
    build.module(decoder + "norm1.", "decoder.attention_norm.")
    build.module(decoder + "norm2.", "decoder.ffn_norm.")
    build.module(fusion + "decoder.norm.", "output_norm.")
    build.module("class_embed.layers.0.", "class_head.layers.0.")
    build.module("class_embed.layers.1.", "class_head.layers.1.")
    # Two-way classifier (softmax[..., 0] = target) -> one logit: row 0 minus row 1.
    width = build.ours["class_head.layers.2.weight"].shape[1]
    weight = build.add("class_embed.layers.2.weight", (2, width))
    bias = build.add("class_embed.layers.2.bias", (2,))
    build.release.expected["class_head.layers.2.weight"] = (weight[0] - weight[1])[None]
    build.release.expected["class_head.layers.2.bias"] = (bias[0] - bias[1])[None]
    for layer in range(3):
        build.module(f"bbox_embed.layers.{layer}.", f"box_head.layers.{layer}.")
    build.copy("query_embed.weight", "sparsify.sparse_vectors")
    build.module("input_proj.", "input_proj.")
    body = "backbone.0.body."
    build.copy(body + "conv1.weight", "backbone.stem.conv.weight")
    build.batchnorm(body + "bn1.", "backbone.stem.norm.")
    for layer in (1, 2, 3):  # BasicBlocks, two a layer; a downsample where the width changes
        for block in (0, 1):
            source, ours = f"{body}layer{layer}.{block}.", f"backbone.stages.{layer - 1}.{block}."
            build.copy(source + "conv1.weight", ours + "conv1.weight")
            build.batchnorm(source + "bn1.", ours + "norm1.")
            build.copy(source + "conv2.weight", ours + "conv2.weight")
            build.batchnorm(source + "bn2.", ours + "norm2.")
            if layer > 1 and block == 0:
                build.copy(source + "downsample.0.weight", ours + "shortcut.conv.weight")
                build.batchnorm(source + "downsample.1.", ours + "shortcut.norm.")
    return build.release


# MixFormerV2 (MCG-NJU/MixFormerV2, mixformer2_vit_online) ----------------------------------


def mixformerv2_release(network, seed: int) -> Release:
    build = Builder(network, seed)
    build.copy("backbone.pos_embed_s", "pos_embed_search")
    build.copy("backbone.pos_embed_t", "pos_embed_template")
    shape = build.ours["prediction_tokens"].shape
    tokens = build.add("backbone.reg_tokens", shape)
    positions = build.add("backbone.pos_embed_reg", shape)
    # Added once at the input; their tokens unbind (l, r, t, b), our rows are (l, t, r, b).
    build.release.expected["prediction_tokens"] = (tokens + positions)[:, [0, 2, 1, 3]]
    build.module("backbone.patch_embed.proj.", "patch_embed.proj.")
    for block in range(len(network.blocks)):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            build.module(f"backbone.blocks.{block}.{part}.", f"blocks.{block}.{part}.")
    # MlpHead: layers = [Sequential(Linear, LayerNorm, ReLU), Sequential(Linear, LayerNorm)]
    for source, ours in (("0.0", "0"), ("0.1", "1"), ("1.0", "3"), ("1.1", "4")):
        build.module(f"box_head.layers.{source}.", f"box_head.layers.{ours}.")
    # MlpScoreDecoder: layers = [Sequential(Linear, ReLU), Linear]
    build.module("score_head.layers.0.0.", "score_head.layers.0.")
    build.module("score_head.layers.1.", "score_head.layers.2.")
    return build.release


BUILDERS: Dict[str, Callable[..., Release]] = {
    "hcat": hcat_release,
    "hit": hit_release,
    "mixformerv2": mixformerv2_release,
}


def release_for(model: str) -> Release:
    seed = MODELS.index(model) if model in MODELS else 100 + SIBLINGS.index(model)
    return BUILDERS[family(model)](create_model(model), seed)


# -- the layout is the authors' ---------------------------------------------------------------


def layout(state) -> List[list]:
    """[key, shape, dtype] rows, as the fixture manifests list them."""
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()]


@pytest.mark.parametrize("sibling", SIBLINGS)
def test_the_built_layout_is_the_sibling_fixtures(sibling):
    """Built for the model with a parity fixture, the layout is the fixture's exactly: every
    key, in the authors' state-dict order, with its shape and dtype (HiT: and the stored
    bias index of every attention block)."""
    manifest = [row[:3] for row in fx.manifest(sibling)["state_dict"]["keys"]]
    release = release_for(sibling)
    assert layout(release.state) == manifest
    if sibling == "hit_tiny":
        fixture = fx.authors_state(sibling)
        indices = [k for k in release.state if k.endswith("attention_bias_idxs")]
        assert len(indices) == 9 + 2  # LeViT-128S: 2 + 3 + 4 blocks and two subsamples
        for key in indices:
            assert torch.equal(release.state[key], fixture[key]), key


def test_hcat_n1_layout_is_the_n2_fixture_without_its_second_layer():
    manifest = [row[:3] for row in fx.manifest("hcat")["state_dict"]["keys"]]
    second = "featurefusion_network.encoder.layers.1."
    assert layout(release_for("hcat_n1").state) == [r for r in manifest if second not in r[0]]


# -- conversion -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_variant_release_converts_completely_and_exactly(model, tmp_path, monkeypatch):
    release = release_for(model)
    path = write_release(str(tmp_path / "release.pth.tar"), release.state, TRAINERS[family(model)])
    taken = set()
    take = StateMap.take

    def recording_take(self, key):
        taken.add(key)
        return take(self, key)

    monkeypatch.setattr(StateMap, "take", recording_take)
    result = convert_release(model, path, str(tmp_path / f"{model}.safetensors"))

    assert result.reader == "restricted"
    # Every tensor of the file was asked for by the key map, and nothing else was.
    assert taken == set(release.state)
    assert result.tensors_read == len(release.state)
    network = create_model(model)
    assert result.tensors_written == len(network.state_dict())
    weights = load_file(result.out)
    network.load_state_dict(weights, strict=True)
    if model == "mixformerv2_b":
        assert result.overrides["bins"] == weights["box_head.layers.3.weight"].shape[0] == 96

    # Values: one-to-one copies and the documented re-layouts, exactly.
    for key, value in release.expected.items():
        assert torch.equal(weights[key], value), key
    for key, (biases, index, offsets) in release.bias_tables.items():
        table = weights[key]  # (heads, extent, extent): table[h, |dy|, |dx|]
        dense = torch.zeros_like(table)
        for (dy, dx), column in offsets.items():
            dense[:, dy, dx] = biases[:, column]
        assert torch.equal(table, dense), key
        # What their attention adds, attention_biases[:, attention_bias_idxs], ours adds too.
        bias = network.get_submodule(key.rsplit(".", 1)[0])()
        assert torch.equal(bias, biases[:, index]), key
    # Every tensor of the converted weights came from the file (none kept from the network).
    assert set(release.expected) | set(release.bias_tables) == set(weights)


@pytest.mark.parametrize("model", MODELS)
def test_a_variant_release_missing_a_key_is_refused_naming_it(model, tmp_path):
    state = release_for(model).state
    dropped = DROPPED[model]
    assert dropped in state
    del state[dropped]
    path = write_release(str(tmp_path / "release.pth.tar"), state, TRAINERS[family(model)])
    out = tmp_path / f"{model}.safetensors"
    with pytest.raises(ValueError) as error:
        convert_release(model, path, str(out))
    message = str(error.value)
    assert f"not a {model} checkpoint in the authors' layout" in message
    assert message.endswith(f"missing from the checkpoint (1): {dropped}")  # nothing else
    assert not out.exists()
