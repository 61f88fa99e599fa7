"""Building blocks of ABTrack: prunable ViT blocks, bypass decisions and the center head.

Vision Transformer Pruning (paper Sec. 3.3, Eq. 3-5) puts two relaxed diagonal
dimension-reduction (DR) matrices into every block, stored here as vectors:

* ``d1`` scales the dimensions of the normalised attention input (``X~ = X D1``, the rows of
  W^Q, W^K, W^V) and the concatenated head outputs entering the output projection (the rows
  of W^O), as Eq. 5 writes ``W~ = D1 W`` for all four matrices;
* ``d2`` scales the dimensions of the normalised MLP input (``Y~ = Y D2``, the rows of fc1).
  Eq. 5 simplifies every MLP matrix to d x d; fc2's rows are the 4d hidden units, outside the
  d-dimensional domain of D2, so fc2 is left as it is.

Both start at one (identity), where the block is the plain pretrained ViT block. After
training with the L1 penalty of Eq. 6, :func:`binarize_block` keeps ``d*`` dimensions per
block, ``d* = floor(d (1 - ratio) / heads) * heads`` (ranked inside the block, not across
blocks). For ``d1`` the ``d* / heads`` kept dimensions are chosen inside each head's slice of
the concatenated outputs, so a physically pruned attention keeps ``heads`` equal value heads;
this is what makes the paper's "heads divides ||v||_1" a structural guarantee.
:func:`prune_block` then turns a binarized block into :class:`PrunedViTBlock`, whose Linear
layers are smaller and whose outputs equal the masked block's.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-6  # timm's ViT / DeiT value, so pretrained statistics carry over


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale) v on (N, heads, tokens, dim); v may have its own head width."""
    weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * scale, dim=-1)
    return torch.matmul(weights, v)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    n, heads, tokens, width = x.shape
    return x.transpose(1, 2).reshape(n, tokens, heads * width)


class MaskedAttention(nn.Module):
    """Multi-head self-attention with the relaxed DR vector ``d1`` (timm's qkv layout)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.d1 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, dim = x.shape
        qkv = self.qkv(x * self.d1).reshape(n, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        heads = _merge_heads(_attention(q, k, v, self.scale))
        return self.proj(heads * self.d1)


class MaskedMlp(nn.Module):
    """Two-layer GELU MLP whose input dimensions are scaled by the relaxed DR vector ``d2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.d2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x * self.d2)))


class ViTBlock(nn.Module):
    """Pre-norm ViT block (Eq. 3) with DR vectors; parameter names follow timm's ``blocks.N``."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = MaskedAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = MaskedMlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PrunedAttention(nn.Module):
    """Attention after pruning: ``d*`` input dimensions, full q/k heads, ``d* / heads`` wide v.

    Queries and keys keep their width: Eq. 5 masks only the rows of W^Q and W^K, so the
    attention weights use every head dimension, scaled as in the unpruned block.
    """

    def __init__(self, dim: int, num_heads: int, kept: int) -> None:
        super().__init__()
        if kept % num_heads:
            raise ValueError(f"kept dims {kept} not divisible by {num_heads} heads")
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.register_buffer("kept_inputs", torch.arange(kept))
        self.qkv = nn.Linear(kept, 2 * dim + kept)
        self.proj = nn.Linear(kept, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, _ = x.shape
        heads, dim = self.num_heads, self.dim
        qkv = self.qkv(x.index_select(-1, self.kept_inputs))
        q = qkv[..., :dim].reshape(n, tokens, heads, dim // heads).transpose(1, 2)
        k = qkv[..., dim : 2 * dim].reshape(n, tokens, heads, dim // heads).transpose(1, 2)
        v = qkv[..., 2 * dim :].reshape(n, tokens, heads, -1).transpose(1, 2)
        return self.proj(_merge_heads(_attention(q, k, v, self.scale)))


class PrunedMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, kept: int) -> None:
        super().__init__()
        self.register_buffer("kept_inputs", torch.arange(kept))
        self.fc1 = nn.Linear(kept, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x.index_select(-1, self.kept_inputs))))


class PrunedViTBlock(nn.Module):
    """A binarized ViT block with the masked dimensions physically removed."""

    def __init__(self, dim: int, num_heads: int, hidden: int, kept: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = PrunedAttention(dim, num_heads, kept)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = PrunedMlp(dim, hidden, kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def kept_dimensions(dim: int, num_heads: int, pruning_ratio: float) -> int:
    """d* = floor(d (1 - ratio) / heads) * heads, never below one dimension per head."""
    if not 0.0 <= pruning_ratio < 1.0:
        raise ValueError(f"pruning_ratio must be in [0, 1), got {pruning_ratio!r}")
    per_head = int(dim * (1.0 - pruning_ratio) / num_heads + 1e-9)
    return max(per_head, 1) * num_heads


def _top_indices(scores: torch.Tensor, count: int) -> torch.Tensor:
    # Importance = magnitude: the same order as the paper's descending values whenever the
    # relaxed scores stay non-negative, as they do from the all-ones start under L1.
    return torch.topk(scores.abs(), count, sorted=False).indices.sort().values


def _binary(dim: int, kept: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(dim, dtype=like.dtype, device=like.device)
    mask[kept] = 1.0
    return mask


@torch.no_grad()
def binarize_block(block: ViTBlock, pruning_ratio: float) -> Tuple[int, int]:
    """Replace the block's relaxed d1/d2 by 0/1 masks in place; returns (kept d1, kept d2).

    The masks are frozen (requires_grad False): the next stage is fine-tuning with fixed DR
    matrices, then :func:`prune_block`.
    """
    attn, mlp = block.attn, block.mlp
    dim, heads = attn.d1.numel(), attn.num_heads
    kept = kept_dimensions(dim, heads, pruning_ratio)
    width = dim // heads
    per_head = [
        _top_indices(attn.d1[h * width : (h + 1) * width], kept // heads) + h * width
        for h in range(heads)
    ]
    attn.d1.copy_(_binary(dim, torch.cat(per_head), attn.d1))
    mlp.d2.copy_(_binary(dim, _top_indices(mlp.d2, kept), mlp.d2))
    attn.d1.requires_grad_(False)
    mlp.d2.requires_grad_(False)
    return kept, kept


def _kept_from_mask(mask: torch.Tensor) -> torch.Tensor:
    values = set(mask.unique().tolist())
    if not values <= {0.0, 1.0}:
        raise ValueError("DR vector is not binary; call binarize_block first")
    return torch.nonzero(mask, as_tuple=False).flatten()


@torch.no_grad()
def prune_block(block: ViTBlock) -> PrunedViTBlock:
    """Physically remove the dimensions a binarized block masks out (same outputs)."""
    attn, mlp = block.attn, block.mlp
    dim, heads = attn.d1.numel(), attn.num_heads
    kept1, kept2 = _kept_from_mask(attn.d1), _kept_from_mask(mlp.d2)
    if kept1.numel() != kept2.numel():
        raise ValueError("d1 and d2 keep different numbers of dimensions")
    width = dim // heads
    per_head = torch.bincount(kept1 // width, minlength=heads)
    if bool((per_head != per_head[0]).any()):
        raise ValueError(f"d1 keeps unequal numbers of dimensions per head: {per_head.tolist()}")
    pruned = PrunedViTBlock(dim, heads, mlp.fc1.out_features, kept1.numel())
    pruned.norm1.load_state_dict(block.norm1.state_dict())
    pruned.norm2.load_state_dict(block.norm2.state_dict())

    qkv_rows = torch.cat([torch.arange(2 * dim), 2 * dim + kept1])
    pruned.attn.kept_inputs.copy_(kept1)
    pruned.attn.qkv.weight.copy_(attn.qkv.weight[qkv_rows][:, kept1])
    pruned.attn.qkv.bias.copy_(attn.qkv.bias[qkv_rows])
    pruned.attn.proj.weight.copy_(attn.proj.weight[:, kept1])
    pruned.attn.proj.bias.copy_(attn.proj.bias)

    pruned.mlp.kept_inputs.copy_(kept2)
    pruned.mlp.fc1.weight.copy_(mlp.fc1.weight[:, kept2])
    pruned.mlp.fc1.bias.copy_(mlp.fc1.bias)
    pruned.mlp.fc2.load_state_dict(mlp.fc2.state_dict())
    return pruned.to(attn.qkv.weight.device)


def dimension_reduction_l1(blocks: List[nn.Module]) -> torch.Tensor:
    """sum_k (||D1^k||_1 + ||D2^k||_1) of Eq. 6 (the trainer multiplies by alpha_k)."""
    terms = [
        b.attn.d1.abs().sum() + b.mlp.d2.abs().sum() for b in blocks if isinstance(b, ViTBlock)
    ]
    if not terms:
        raise ValueError("no block with relaxed DR matrices")
    return torch.stack(terms).sum()


class BypassDecision(nn.Module):
    """BDM of Eq. 1: p_i = sigmoid(l_i(b_i)), read from the bypass token (token 0).

    Zero-initialised, so every probability starts at 0.5, which does not exceed the default
    threshold rho = 0.5: training starts from the full pretrained ViT, and gradients still
    reach the module from the first step.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, tokens, dim) -> (N, 1) bypass probability."""
        return torch.sigmoid(self.linear(tokens[:, 0]))


def _conv_bn_relu(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel_size=3, padding=1),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


def _branch(inputs: int, channels: int, outputs: int) -> nn.Sequential:
    widths = [inputs, channels, channels // 2, channels // 4, channels // 8]
    layers = [_conv_bn_relu(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*layers, nn.Conv2d(widths[-1], outputs, kernel_size=1))


class CenterHead(nn.Module):
    """OSTrack-style center head: three Conv-BN-ReLU stacks (C, C/2, C/4, C/8) + 1x1 conv.

    Returns score logits (N,1,H,W), sigmoid offsets (N,2,H,W) and sigmoid sizes (N,2,H,W).
    """

    def __init__(self, inputs: int, channels: int) -> None:
        super().__init__()
        if channels % 8:
            raise ValueError(f"head channels must be divisible by 8, got {channels}")
        self.score = _branch(inputs, channels, 1)
        self.offset = _branch(inputs, channels, 2)
        self.size = _branch(inputs, channels, 2)
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def forward(self, features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        score = self.score(features)
        offset = torch.sigmoid(self.offset(features))
        size = torch.sigmoid(self.size(features))
        return score, offset, size
