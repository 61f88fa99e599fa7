"""LeViT building blocks adapted to a one-stream tracker (HiT).

LeViT (Graham et al., 2021) is a hierarchical vision transformer: a convolutional stem that
downsamples by 16, stages of attention + MLP blocks, and "shrink" attention blocks between
stages whose queries are subsampled by 2 per axis. HiT runs it on the concatenation of the
search and template tokens, so two things change with respect to classification:

* every token sequence holds several images (search first, then the templates), and shrinking
  subsamples each image on its own grid;
* the attention bias is the dual-image position encoding: the image grids are laid out
  diagonally in one plane (search at the origin, each template starting where the previous
  image ends on both axes) and the bias of a query/key pair is a learned value per head indexed
  by (|dy|, |dx|) between their plane positions.

Linear and convolution layers carry a BatchNorm, as in LeViT; ``fold_batchnorm`` merges each
pair into one layer for inference and export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn


class LinearNorm(nn.Module):
    """Linear layer without bias followed by BatchNorm over all tokens (LeViT's Linear_BN)."""

    def __init__(self, in_features: int, out_features: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return self.bn(y.flatten(0, 1)).reshape_as(y)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        fused = nn.Linear(self.linear.in_features, self.linear.out_features)
        fused.weight.copy_(self.linear.weight * scale[:, None])
        fused.bias.copy_(self.bn.bias - self.bn.running_mean * scale)
        return fused


class ConvNorm(nn.Module):
    """Convolution without bias followed by BatchNorm (the stem's layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv = self.conv
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
        )
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(self.bn.bias - self.bn.running_mean * scale)
        return fused


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every LinearNorm / ConvNorm inside ``module`` by its fused layer, in place.

    Uses the BatchNorm running statistics, so only meaningful for inference; the state dict
    keys change (``x.linear.weight`` + ``x.bn.*`` become ``x.weight`` + ``x.bias``).
    """
    for name, child in module.named_children():
        if isinstance(child, (LinearNorm, ConvNorm)):
            setattr(module, name, child.fuse())
        else:
            fold_batchnorm(child)
    return module


class ConvStem16(nn.Module):
    """LeViT's patch embedding: four 3x3 stride-2 Conv+BN layers with Hardswish between."""

    def __init__(self, out_channels: int, in_channels: int = 3) -> None:
        super().__init__()
        widths = [in_channels, out_channels // 8, out_channels // 4, out_channels // 2]
        widths.append(out_channels)
        self.conv1 = ConvNorm(widths[0], widths[1], 3, 2)
        self.conv2 = ConvNorm(widths[1], widths[2], 3, 2)
        self.conv3 = ConvNorm(widths[2], widths[3], 3, 2)
        self.conv4 = ConvNorm(widths[3], widths[4], 3, 2)
        self.act = nn.Hardswish()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> tokens (N, (S/16)^2, C), row-major over the S/16 grid."""
        x = self.act(self.conv1(image))
        x = self.act(self.conv2(x))
        x = self.act(self.conv3(x))
        x = self.conv4(x)
        return x.flatten(2).transpose(1, 2)


@dataclass(frozen=True)
class JointLayout:
    """Square token grids of several images concatenated in one sequence.

    ``sides[0]`` is the search grid, the others are templates. In the dual-image plane each
    grid starts where the previous one ends on both axes (a diagonal arrangement), so every
    token has a unique row and column.
    """

    sides: Tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        return sum(side * side for side in self.sides)

    @property
    def plane_extent(self) -> int:
        return sum(self.sides)

    def token_slices(self) -> List[Tuple[int, int]]:
        """(start, end) of each image's tokens in the sequence."""
        out, start = [], 0
        for side in self.sides:
            out.append((start, start + side * side))
            start += side * side
        return out

    def plane_positions(self) -> torch.Tensor:
        """(num_tokens, 2) integer (row, col) of every token in the dual-image plane."""
        parts, origin = [], 0
        for side in self.sides:
            rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            parts.append(torch.stack([rows.flatten(), cols.flatten()], dim=1) + origin)
            origin += side
        return torch.cat(parts, dim=0)

    def shrink(self, stride: int) -> Tuple[JointLayout, torch.Tensor]:
        """Layout after subsampling each grid by ``stride`` and the indices of kept tokens."""
        kept, new_sides = [], []
        for (start, _), side in zip(self.token_slices(), self.sides):
            picks = torch.arange(0, side, stride)
            rows, cols = torch.meshgrid(picks, picks, indexing="ij")
            kept.append(start + rows.flatten() * side + cols.flatten())
            new_sides.append(len(picks))
        return JointLayout(tuple(new_sides)), torch.cat(kept)


class DualImageBias(nn.Module):
    """Learned attention bias per head indexed by (|dy|, |dx|) in the dual-image plane.

    The table is dense over all offsets of the plane, shape (heads, extent, extent); a query
    at plane position (y, x) and a key at (y', x') read ``table[h, |y - y'|, |x - x'|]``.
    """

    def __init__(self, num_heads: int, query_pos: torch.Tensor, key_pos: torch.Tensor) -> None:
        super().__init__()
        extent = int(max(query_pos.max(), key_pos.max())) + 1
        self.table = nn.Parameter(torch.zeros(num_heads, extent, extent))
        offsets = (query_pos[:, None, :] - key_pos[None, :, :]).abs()
        self.register_buffer("index", offsets[..., 0] * extent + offsets[..., 1], persistent=False)

    def forward(self) -> torch.Tensor:
        """(heads, num_queries, num_keys) bias added to the attention logits."""
        return self.table.flatten(1)[:, self.index]


class Attention(nn.Module):
    """LeViT multi-head attention: Q and K of key_dim per head, V of attn_ratio * key_dim,
    Hardswish on the heads' output before the projection, dual-image bias on the logits."""

    def __init__(
        self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, layout: JointLayout
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = int(attn_ratio * key_dim)
        self.scale = key_dim**-0.5
        self.qkv = LinearNorm(dim, num_heads * (2 * key_dim + self.value_dim))
        self.act = nn.Hardswish()
        self.proj = LinearNorm(num_heads * self.value_dim, dim, bn_weight_init=0.0)
        positions = layout.plane_positions()
        self.bias = DualImageBias(num_heads, positions, positions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = (
            self.qkv(x)
            .view(batch, tokens, self.num_heads, -1)
            .split([self.key_dim, self.key_dim, self.value_dim], dim=3)
        )
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        logits = (q @ k.transpose(-2, -1)) * self.scale + self.bias()
        heads = logits.softmax(dim=-1) @ v
        heads = heads.transpose(1, 2).reshape(batch, tokens, self.num_heads * self.value_dim)
        return self.proj(self.act(heads))


class ShrinkAttention(nn.Module):
    """Attention whose queries are each image's tokens subsampled by ``stride`` per axis.

    Keys and values come from all input tokens, so the output has the subsampled token count
    and ``out_dim`` channels (V is wider than in the stage blocks: attn_ratio 4 in LeViT).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float,
        layout: JointLayout,
        stride: int = 2,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = int(attn_ratio * key_dim)
        self.scale = key_dim**-0.5
        self.out_layout, kept = layout.shrink(stride)
        self.register_buffer("query_index", kept, persistent=False)
        self.kv = LinearNorm(in_dim, num_heads * (key_dim + self.value_dim))
        self.q = LinearNorm(in_dim, num_heads * key_dim)
        self.act = nn.Hardswish()
        self.proj = LinearNorm(num_heads * self.value_dim, out_dim)
        key_pos = layout.plane_positions()
        self.bias = DualImageBias(num_heads, key_pos[kept], key_pos)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        k, v = (
            self.kv(x)
            .view(batch, tokens, self.num_heads, -1)
            .split([self.key_dim, self.value_dim], dim=3)
        )
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        queries = x[:, self.query_index]
        num_queries = queries.shape[1]
        q = self.q(queries).view(batch, num_queries, self.num_heads, self.key_dim).transpose(1, 2)
        logits = (q @ k.transpose(-2, -1)) * self.scale + self.bias()
        heads = logits.softmax(dim=-1) @ v
        heads = heads.transpose(1, 2).reshape(batch, num_queries, self.num_heads * self.value_dim)
        return self.proj(self.act(heads))


class Mlp(nn.Module):
    """LeViT's MLP: Linear+BN, Hardswish, Linear+BN (zero-initialised BN scale)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.ln1 = LinearNorm(dim, hidden)
        self.act = nn.Hardswish()
        self.ln2 = LinearNorm(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln2(self.act(self.ln1(x)))


def _drop_path(branch: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth on a residual branch (per sample), identity at inference."""
    if not training or rate <= 0.0:
        return branch
    keep = torch.rand(branch.shape[0], 1, 1, device=branch.device) >= rate
    return branch * keep.to(branch.dtype) / (1.0 - rate)


class LeViTBlock(nn.Module):
    """Residual attention followed by a residual MLP."""

    def __init__(
        self,
        dim: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float,
        mlp_ratio: float,
        layout: JointLayout,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.attn = Attention(dim, key_dim, num_heads, attn_ratio, layout)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + _drop_path(self.attn(x), self.drop_path, self.training)
        return x + _drop_path(self.mlp(x), self.drop_path, self.training)


class ShrinkBlock(nn.Module):
    """Shrink attention (no residual: the token count changes) and a residual MLP."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float,
        mlp_ratio: float,
        layout: JointLayout,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.attn = ShrinkAttention(in_dim, out_dim, key_dim, num_heads, attn_ratio, layout)
        self.mlp = Mlp(out_dim, int(out_dim * mlp_ratio))
        self.out_layout = self.attn.out_layout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x)
        return x + _drop_path(self.mlp(x), self.drop_path, self.training)


class LeViTStage(nn.Module):
    """One resolution level: an optional shrink block, then ``depth`` LeViT blocks."""

    def __init__(self, blocks: Sequence[nn.Module], shrink: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.shrink = shrink if shrink is not None else nn.Identity()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.shrink(x))


@dataclass(frozen=True)
class LeViTSpec:
    """Widths and depths of a LeViT backbone (three stages)."""

    embed_dims: Tuple[int, int, int]
    key_dim: int
    num_heads: Tuple[int, int, int]
    depths: Tuple[int, int, int]
    attn_ratio: float = 2.0  # V width / key_dim in the stage blocks
    mlp_ratio: float = 2.0
    shrink_attn_ratio: float = 4.0  # V width / key_dim in the shrink attention
    shrink_mlp_ratio: float = 2.0
    drop_path: float = 0.0


class JointLeViT(nn.Module):
    """LeViT over the joint search + template token sequence; returns every stage's output."""

    def __init__(self, spec: LeViTSpec, layout: JointLayout) -> None:
        super().__init__()
        self.spec = spec
        self.stem = ConvStem16(spec.embed_dims[0])
        self.layouts: List[JointLayout] = []
        stages = []
        for i in range(3):
            shrink = None
            if i > 0:
                in_dim = spec.embed_dims[i - 1]
                shrink = ShrinkBlock(
                    in_dim,
                    spec.embed_dims[i],
                    spec.key_dim,
                    in_dim // spec.key_dim,
                    spec.shrink_attn_ratio,
                    spec.shrink_mlp_ratio,
                    layout,
                    spec.drop_path,
                )
                layout = shrink.out_layout
            blocks = [
                LeViTBlock(
                    spec.embed_dims[i],
                    spec.key_dim,
                    spec.num_heads[i],
                    spec.attn_ratio,
                    spec.mlp_ratio,
                    layout,
                    spec.drop_path,
                )
                for _ in range(spec.depths[i])
            ]
            stages.append(LeViTStage(blocks, shrink))
            self.layouts.append(layout)
        self.stages = nn.ModuleList(stages)

    def forward(self, tokens: torch.Tensor) -> List[torch.Tensor]:
        """Joint tokens (N, L, C0) from the stem -> list of the three stages' token outputs."""
        outputs = []
        for stage in self.stages:
            tokens = stage(tokens)
            outputs.append(tokens)
        return outputs
