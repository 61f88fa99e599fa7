"""MixFormerV2 (Cui et al., NeurIPS 2023): a plain ViT over one mixed token sequence.

The sequence is ``[template, online template, search, 4 prediction tokens]``. Every layer
runs the prediction-token-involved mixed attention (P-MAM): template and online-template
queries attend to the template keys only, while search and prediction-token queries attend to
all keys. After the last layer, one shared MLP maps each prediction token (left, top, right,
bottom) to logits over ``bins`` positions of its box side, and a score MLP reads the mean of
the four prediction tokens.

Because template queries never see search keys, every layer's template tokens depend on the
templates alone. ``encode_template`` therefore runs the template tokens through all layers once
and returns each layer's template keys and values; ``track_search`` runs only the search and
prediction tokens, attending to ``[cached template keys, own keys]``. This is the same
computation as the joint forward (``forward_joint``, used for training), equal up to float
rounding.

Outputs (see the card's ``postprocess``): ``box_logits`` (N, 4, bins) for x1, y1, x2, y2 and
``score_logit`` (N, 1). Coordinate = sum_i softmax(logits)_i * (i + 0.5) / bins, in [0, 1] of
the search crop.

Where the authors' code differs from the paper, this module follows the paper by default and
offers the code's form for their released weights (``ros_tracker.zoo.authors.mixformerv2``):
the score MLP runs on the mean of the prediction tokens (``score_pooling="mean_token"``; the
code averages per-token scores, ``"per_token"``), and bin centres sit at (i + 0.5) / bins (the
code uses i / bins: the card's ``coordinate_offset`` 0.0). Position embeddings are learnable,
initialised with a 2-D sine-cosine code (the code freezes the sine-cosine code; converted
weights keep the released values). The code adds a separate learned position to each
prediction token; both are one sum at the input, held here as ``prediction_tokens``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ros_tracker.zoo.base import TrackerNetwork
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.registry import register_model

NUM_PREDICTION_TOKENS = 4  # left, top, right, bottom: the order of box_logits' rows
SCORE_POOLINGS = ("mean_token", "per_token")


@dataclass(frozen=True)
class MixFormerV2Config:
    """Architecture hyper-parameters; the builder overrides any of them by keyword."""

    embed_dim: int = 768
    depth: int = 8
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    template_size: int = 128
    search_size: int = 288
    bins: int = 96  # authors' FEAT_SZ: 3 px per bin on a 288 px search crop
    head_hidden: int = 0  # hidden width of the box MLP; 0 = embed_dim
    score_hidden: int = 0  # hidden width of the score MLP; 0 = embed_dim
    norm_eps: float = 1e-6
    drop_path_rate: float = 0.0  # stochastic depth for training; identity at inference
    # Score head input (see ScoreHead): "mean_token" the paper's, "per_token" the authors' code.
    score_pooling: str = "mean_token"

    def __post_init__(self) -> None:
        if self.score_pooling not in SCORE_POOLINGS:
            raise ValueError(
                f"score_pooling must be one of {', '.join(SCORE_POOLINGS)}, "
                f"got {self.score_pooling!r}"
            )
        if self.embed_dim % self.num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        for size in (self.template_size, self.search_size):
            if size % self.patch_size:
                raise ValueError("image sizes must be multiples of patch_size")

    @property
    def template_grid(self) -> int:
        return self.template_size // self.patch_size

    @property
    def search_grid(self) -> int:
        return self.search_size // self.patch_size

    @property
    def template_tokens(self) -> int:
        """Tokens of the template and the online template together."""
        return 2 * self.template_grid**2


def sincos_position_embedding(grid: int, dim: int) -> torch.Tensor:
    """A (grid*grid, dim) 2-D sine-cosine code, rows in row-major order (y, then x)."""
    if dim % 4:
        raise ValueError("embedding dim must be divisible by 4 for a 2-D sine-cosine code")
    quarter = dim // 4
    frequencies = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    coords = torch.arange(grid, dtype=torch.float64)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for axis in (ys.reshape(-1), xs.reshape(-1)):
        angles = axis[:, None] * frequencies[None, :]
        parts.extend([angles.sin(), angles.cos()])
    return torch.cat(parts, dim=1).float()


class DropPath(nn.Module):
    """Stochastic depth: drops a sample's whole residual branch while training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens (N, H*W, C); ``proj`` matches the ViT key layout."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MixedAttention(nn.Module):
    """Multi-head attention whose queries and keys may come from different token sets.

    Keys and values travel with heads merged, (N, L, C), so the cached template state has the
    same layout whatever the head count.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def qkv_split(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return q, k, v

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        return x.reshape(n, length, self.num_heads, self.head_dim).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) v per head, then the output projection."""
        n, length, dim = q.shape
        weights = (self._heads(q) * self.scale) @ self._heads(k).transpose(-2, -1)
        mixed = weights.softmax(dim=-1) @ self._heads(v)
        return self.proj(mixed.transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    """Pre-norm transformer layer with P-MAM, in three call forms sharing one set of weights.

    ``residual_decay`` scales the layer's whole residual branch (paper eq. 8); progressive depth
    pruning lowers it from 1 to 0 during training, turning the layer into an identity.
    """

    def __init__(self, config: MixFormerV2Config, drop_path: float) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = MixedAttention(dim, config.num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))
        self.drop_path = DropPath(drop_path)
        self.residual_decay = 1.0

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """Residual + MLP after the attention output of the queried tokens ``x``."""
        if self.residual_decay == 1.0:
            x = x + self.drop_path(attended)
            return x + self.drop_path(self.mlp(self.norm2(x)))
        branch = attended + self.mlp(self.norm2(x + attended))
        return x + self.residual_decay * self.drop_path(branch)

    def template_step(
        self, x: torch.Tensor, with_output: bool = True
    ) -> Tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Template tokens attend to template keys only; returns (tokens, keys, values).

        ``with_output=False`` skips everything after the key/value projection (the last layer's
        template outputs are never read).
        """
        q, k, v = self.attn.qkv_split(self.norm1(x))
        if not with_output:
            return None, k, v
        return self._finish(x, self.attn.attend(q, k, v)), k, v

    def search_step(
        self,
        x: torch.Tensor,
        template_keys: torch.Tensor,
        template_values: torch.Tensor,
        last_queries: int = 0,
    ) -> torch.Tensor:
        """Search and prediction tokens attend to [template keys, own keys].

        ``last_queries > 0`` updates only the last that many tokens (the prediction tokens in
        the final layer, where search outputs would be discarded); all tokens still serve as
        keys and values.
        """
        q, k, v = self.attn.qkv_split(self.norm1(x))
        keys = torch.cat([template_keys, k], dim=1)
        values = torch.cat([template_values, v], dim=1)
        if last_queries:
            x, q = x[:, -last_queries:], q[:, -last_queries:]
        return self._finish(x, self.attn.attend(q, keys, values))

    def joint_step(self, x: torch.Tensor, template_tokens: int) -> torch.Tensor:
        """The whole sequence at once (paper eq. 1), as used in training."""
        q, k, v = self.attn.qkv_split(self.norm1(x))
        t = template_tokens
        template_out = self.attn.attend(q[:, :t], k[:, :t], v[:, :t])
        rest_out = self.attn.attend(q[:, t:], k, v)
        return self._finish(x, torch.cat([template_out, rest_out], dim=1))


class BoxDistributionHead(nn.Module):
    """One MLP shared by the four prediction tokens: token -> logits over ``bins`` positions.

    The final LayerNorm over the logits follows the authors' head; it keeps the logits' scale,
    and so the sharpness of the distribution, a learned quantity.
    """

    def __init__(self, dim: int, hidden: int, bins: int, eps: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LayerNorm(hidden, eps=eps),
            nn.ReLU(),
            nn.Linear(hidden, bins),
            nn.LayerNorm(bins, eps=eps),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(tokens)


class ScoreHead(nn.Module):
    """Target-quality logit from the prediction tokens.

    ``pooling="mean_token"``: the MLP reads the mean of the four tokens (paper Sec. 3.1, "we
    mean the output prediction tokens and then use it to estimate the target confidence");
    ``"per_token"``: the MLP scores each token and the four logits are averaged (the authors'
    code, which their released weights need).
    """

    def __init__(self, dim: int, hidden: int, pooling: str = "mean_token") -> None:
        super().__init__()
        self.pooling = pooling
        self.layers = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.pooling == "per_token":
            return self.layers(tokens).mean(dim=1)
        return self.layers(tokens.mean(dim=1))


class MixFormerV2(TrackerNetwork):
    """ViT backbone with prediction tokens and P-MAM, plus the box-distribution and score MLPs.

    encode_template(template, online_template) -> (template_keys, template_values), each
    (N, depth, 2 * template_grid**2, embed_dim): every layer's keys/values of the template tokens.
    track_search(template_keys, template_values, search) -> (box_logits, score_logit).
    """

    def __init__(self, card: ModelCard, config: MixFormerV2Config) -> None:
        super().__init__(card)
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config.patch_size, dim)
        self.pos_embed_template = nn.Parameter(
            sincos_position_embedding(config.template_grid, dim)[None]
        )
        self.pos_embed_search = nn.Parameter(
            sincos_position_embedding(config.search_grid, dim)[None]
        )
        self.prediction_tokens = nn.Parameter(torch.zeros(1, NUM_PREDICTION_TOKENS, dim))
        steps = max(config.depth - 1, 1)
        rates = [config.drop_path_rate * index / steps for index in range(config.depth)]
        self.blocks = nn.ModuleList([Block(config, rate) for rate in rates])
        self.box_head = BoxDistributionHead(
            dim, config.head_hidden or dim, config.bins, config.norm_eps
        )
        self.score_head = ScoreHead(dim, config.score_hidden or dim, config.score_pooling)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.prediction_tokens, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Patch projection initialised like a linear layer on the flattened patch (as in MAE).
        weight = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))

    def vit_position_grids(self) -> Dict[str, Tuple[int, int]]:
        """Position-embedding parameters and their grids, for the ViT checkpoint loader."""
        t, s = self.config.template_grid, self.config.search_grid
        return {"pos_embed_template": (t, t), "pos_embed_search": (s, s)}

    # -- embedding --------------------------------------------------------------------------

    def embed_templates(
        self, template: torch.Tensor, online_template: torch.Tensor
    ) -> torch.Tensor:
        tokens = [
            self.patch_embed(image) + self.pos_embed_template
            for image in (template, online_template)
        ]
        return torch.cat(tokens, dim=1)

    def embed_search(self, search: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(search) + self.pos_embed_search
        prediction = self.prediction_tokens.expand(tokens.shape[0], -1, -1)
        return torch.cat([tokens, prediction], dim=1)

    def predict(self, prediction_tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N, 4, C) prediction tokens -> box_logits (N, 4, bins), score_logit (N, 1)."""
        return self.box_head(prediction_tokens), self.score_head(prediction_tokens)

    def paper_complexity(self) -> Tuple[Optional[int], int]:
        """MACs like the paper's Table 1: linear layers only (thop's way) of one joint pass over
        a single template set (template + search + prediction tokens). No parameter figure."""
        from ros_tracker.zoo.counting import count_macs

        inputs = self.example_inputs()

        def joint_one_template() -> None:
            template = self.patch_embed(inputs["template"]) + self.pos_embed_template
            x = torch.cat([template, self.embed_search(inputs["search"])], dim=1)
            for block in self.blocks:
                x = block.joint_step(x, template.shape[1])
            self.predict(x[:, -NUM_PREDICTION_TOKENS:])

        return None, count_macs(self, joint_one_template, mode="layers")

    # -- deployment halves ------------------------------------------------------------------

    def encode_template(
        self, template: torch.Tensor, online_template: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.embed_templates(template, online_template)
        keys: List[torch.Tensor] = []
        values: List[torch.Tensor] = []
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            out, k, v = block.template_step(x, with_output=index < last)
            keys.append(k)
            values.append(v)
            if out is not None:
                x = out
        return torch.stack(keys, dim=1), torch.stack(values, dim=1)

    def track_search(
        self, template_keys: torch.Tensor, template_values: torch.Tensor, search: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.embed_search(search)
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            last_queries = NUM_PREDICTION_TOKENS if index == last else 0
            x = block.search_step(
                x, template_keys[:, index], template_values[:, index], last_queries
            )
        return self.predict(x[:, -NUM_PREDICTION_TOKENS:])

    # -- training path ----------------------------------------------------------------------

    def forward_joint(
        self,
        template: torch.Tensor,
        online_template: torch.Tensor,
        search: torch.Tensor,
        return_layers: bool = False,
    ) -> Dict[str, Any]:
        """The whole mixed sequence through every layer (training, distillation).

        Returns the outputs by name; with ``return_layers`` also "layer_tokens": each layer's
        full token sequence (N, tokens, C), for feature mimicking (paper eq. 6).
        """
        templates = self.embed_templates(template, online_template)
        x = torch.cat([templates, self.embed_search(search)], dim=1)
        layer_tokens = []
        for block in self.blocks:
            x = block.joint_step(x, templates.shape[1])
            layer_tokens.append(x)
        box_logits, score_logit = self.predict(x[:, -NUM_PREDICTION_TOKENS:])
        outputs: Dict[str, Any] = {"box_logits": box_logits, "score_logit": score_logit}
        if return_layers:
            outputs["layer_tokens"] = layer_tokens
        return outputs


def decode_box_logits(box_logits: torch.Tensor) -> torch.Tensor:
    """(N, 4, bins) logits -> (N, 4) x1, y1, x2, y2 in [0, 1] of the search crop.

    Reference decoding for tests and training; the runtime does the same in numpy.
    """
    bins = box_logits.shape[-1]
    centres = (torch.arange(bins, dtype=box_logits.dtype, device=box_logits.device) + 0.5) / bins
    return (box_logits.softmax(dim=-1) * centres).sum(dim=-1)


# -- zoo entries ----------------------------------------------------------------------------

_PAPER = "MixFormerV2: Efficient Fully Transformer Tracking (Cui et al., NeurIPS 2023)"
_POSTPROCESS = (
    "box_logits (N, 4, bins) are logits for x1, y1, x2, y2 (rows in that order; bins = "
    "card.extra['bins'], 96 by default). Per row: softmax over bins, coordinate = sum_i p_i * "
    "(i + 0.5) / bins, in [0, 1] of the search crop; box = (x1, y1, x2, y2) mapped back through "
    "the crop. score = sigmoid(score_logit). No Hann window. Online template: keep the "
    "highest-scoring crop with score > template_update_threshold since the last swap and swap it "
    "in as 'online_template' every template_update_interval frames (re-run encode_template; "
    "default 200 frames, the paper's; the authors use 10-25 on short benchmarks). Before "
    "the first swap the online template is the initial template."
)
_PER_FRAME = (
    "track_search only: patch embedding of the search crop, then every layer's P-MAM for the "
    "search + 4 prediction tokens against [cached template keys/values, own keys/values] (the "
    "last layer updates the 4 prediction tokens only), then the two token MLPs. "
    "encode_template (both templates through all layers, returning per-layer template keys and "
    "values) runs at initialisation and at each online-template swap."
)
_COUNTING = (
    "The paper gives no parameter count (measured: 58.85 M). Its only cost figure is Table 1: "
    "22.5 'GFLOPs' for the 8-layer token-head MixViT-B without score head, i.e. this entry. "
    "Tracking papers count with thop: MACs of linear/conv layers only. count_macs(mode='layers') "
    "of forward_joint with ONE template set (64 + 324 + 4 tokens) gives 22.4 G: the match. "
    "Per tracked frame here (track_search on cached template keys/values): 17.1 G 'layers', "
    "18.7 G 'all'; encode_template 6.6 G; joint forward with both templates 26.1 G 'layers', "
    "28.1 G 'all'."
)


def _card(name: str, config: MixFormerV2Config, **fields: Any) -> ModelCard:
    return ModelCard(
        name=name,
        family="mixformerv2",
        paper=_PAPER,
        backbone=f"ViT-B/16 ({config.depth} layers, MLP ratio {config.mlp_ratio:g})",
        template_size=config.template_size,
        search_size=config.search_size,
        template_factor=2.0,
        search_factor=4.5,
        head="box_distribution",
        output_names=("box_logits", "score_logit"),
        template_input_names=("template", "online_template"),
        template_state_names=("template_keys", "template_values"),
        feature_size=config.search_grid,
        hann_window=False,
        window_influence=0.0,
        online_template=True,
        template_update_threshold=0.5,
        postprocess=_POSTPROCESS,
        per_frame=_PER_FRAME,
        extra={"bins": config.bins, "config": asdict(config)},
        **fields,
    )


def _build(card: ModelCard, **overrides: Any) -> MixFormerV2:
    """Builder shared by the entries: card.extra['config'] updated by keyword overrides.

    Tiny test network: ``create_model("mixformerv2_b", embed_dim=32, depth=2, num_heads=2,
    template_size=32, search_size=64, bins=16)``. Size overrides are written back into the card
    the network carries, so example_inputs and export see the right shapes.
    """
    base = dict(card.extra["config"])
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise TypeError(f"unknown MixFormerV2 options: {unknown} (known: {sorted(base)})")
    base.update(overrides)
    config = MixFormerV2Config(**base)
    if overrides:
        extra = dict(card.extra, bins=config.bins, config=asdict(config))
        card = card.replace(
            template_size=config.template_size,
            search_size=config.search_size,
            feature_size=config.search_grid,
            extra=extra,
            weights=None,
        )
    return MixFormerV2(card, config)


# A few-thousand-parameter network of the same structure, for tests and quick experiments.
TINY_OVERRIDES: Dict[str, Any] = dict(
    embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, template_size=32, search_size=64, bins=16
)

_B = MixFormerV2Config(depth=8, mlp_ratio=4.0, template_size=128, search_size=288)
_S = MixFormerV2Config(depth=4, mlp_ratio=1.0, template_size=112, search_size=224)
_TEACHER = MixFormerV2Config(depth=12, mlp_ratio=4.0, template_size=128, search_size=288)

# Update interval: the paper's default, 200 frames ("the dynamic templates are updated when the
# update interval of 200 is reached by default", Sec. 4.1; their LaSOT setting). The authors
# use 10-25 on short benchmarks (GOT-10k, TrackingNet, VOT); a card can set those.
_UPDATE_INTERVAL = 200


@register_model(
    _card(
        "mixformerv2_b",
        _B,
        template_update_interval=_UPDATE_INTERVAL,
        reference_macs=22.5,
        counting_note=_COUNTING,
    )
)
def mixformerv2_b(card: ModelCard, **overrides: Any) -> MixFormerV2:
    return _build(card, **overrides)


@register_model(
    _card(
        "mixformerv2_s",
        _S,
        template_update_interval=_UPDATE_INTERVAL,
        counting_note=(
            "The paper gives no parameter or MAC figure for MixFormerV2-S (measured: 16.23 M "
            "params). Per tracked frame (track_search): 2.6 G MACs 'layers', 2.9 G 'all'; "
            "encode_template 1.3 G; joint forward with one template set 3.7 G 'layers' (the "
            "paper's way of counting, see mixformerv2_b), with both 4.4 G 'layers', 4.8 G 'all'."
        ),
    )
)
def mixformerv2_s(card: ModelCard, **overrides: Any) -> MixFormerV2:
    return _build(card, **overrides)


@register_model(
    _card(
        "mixformerv2_teacher",
        _TEACHER,
        template_update_interval=_UPDATE_INTERVAL,
        counting_note=(
            "12-layer MixFormerV2 (token head), the start of deep-to-shallow distillation: the "
            "b entry is pruned from it (12 -> 8 layers), the s entry via 8 -> 4 layers and MLP "
            "ratio 4 -> 1. The paper gives no figures for it. Measured: 87.20 M params; per "
            "tracked frame 26.3 G MACs 'layers', 28.9 G 'all'; joint forward with one template "
            "set 33.5 G 'layers'."
        ),
    )
)
def mixformerv2_teacher(card: ModelCard, **overrides: Any) -> MixFormerV2:
    return _build(card, **overrides)
