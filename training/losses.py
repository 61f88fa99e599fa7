"""Box conversions and the training objectives of the four papers.

Boxes are normalised to the search crop (0..1 across it). ``xyxy`` = (x1, y1, x2, y2),
``cxcywh`` = (cx, cy, w, h). Every loss returns a per-sample tensor (N,) unless it says
otherwise, so callers can weight samples (ABTrack's tau needs the per-sample GIoU loss).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F

EPS = 1e-7


def cxcywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = box.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def xyxy_to_cxcywh(box: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = box.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def _area(box: torch.Tensor) -> torch.Tensor:
    return (box[..., 2] - box[..., 0]).clamp(min=0) * (box[..., 3] - box[..., 1]).clamp(min=0)


def box_iou(pred: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and union of (..., 4) xyxy boxes."""
    top_left = torch.maximum(pred[..., :2], target[..., :2])
    bottom_right = torch.minimum(pred[..., 2:], target[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = _area(pred) + _area(target) - inter
    return inter / (union + EPS), union


def ordered(box: torch.Tensor) -> torch.Tensor:
    """(..., 4) bool: x2 >= x1 and y2 >= y1.

    Heads that predict the two corners independently (HiT's and the MixViT teacher's corner
    maps, MixFormerV2's side distributions) can output x2 < x1. For such a box the
    intersection and its own area vanish: GIoU / CIoU no longer measure overlap (flat inside
    the target, pulling only on the enclosing box outside it), and a tiny HiT trained on
    random pairs stayed on inverted boxes (IoU 0) for hundreds of steps. Those samples
    therefore take the L1 term only, as in STARK (whose GIoU asserts ordered boxes and whose
    actor drops the GIoU term of such a batch); the box term comes in once the box is ordered.
    """
    return (box[..., 2] >= box[..., 0]) & (box[..., 3] >= box[..., 1])


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """1 - GIoU (Rezatofighi et al.) per box, and the IoU (detached)."""
    iou, union = box_iou(pred, target)
    enclosing_tl = torch.minimum(pred[..., :2], target[..., :2])
    enclosing_br = torch.maximum(pred[..., 2:], target[..., 2:])
    enclosing = (enclosing_br - enclosing_tl).clamp(min=0).prod(dim=-1)
    giou = iou - (enclosing - union) / (enclosing + EPS)
    return 1.0 - giou, iou.detach()


def ciou_loss(pred: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """1 - CIoU (Zheng et al.): IoU, centre distance over the enclosing diagonal, aspect term."""
    iou, _ = box_iou(pred, target)
    enclosing_tl = torch.minimum(pred[..., :2], target[..., :2])
    enclosing_br = torch.maximum(pred[..., 2:], target[..., 2:])
    diagonal = ((enclosing_br - enclosing_tl) ** 2).sum(dim=-1) + EPS
    centre_pred = (pred[..., :2] + pred[..., 2:]) / 2
    centre_target = (target[..., :2] + target[..., 2:]) / 2
    distance = ((centre_pred - centre_target) ** 2).sum(dim=-1)
    w_p = (pred[..., 2] - pred[..., 0]).clamp(min=EPS)
    h_p = (pred[..., 3] - pred[..., 1]).clamp(min=EPS)
    w_t = (target[..., 2] - target[..., 0]).clamp(min=EPS)
    h_t = (target[..., 3] - target[..., 1]).clamp(min=EPS)
    v = (4 / math.pi**2) * (torch.atan(w_t / h_t) - torch.atan(w_p / h_p)) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + EPS)
    return 1.0 - (iou - distance / diagonal - alpha * v), iou.detach()


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the last dimension, per box."""
    return (pred - target).abs().mean(dim=-1)


def weighted_focal_loss(score_logits: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (Law & Deng), per sample.

    Positives are the cells where the Gaussian target equals 1; negatives are down-weighted by
    (1 - target)^4 near the peak. Normalised by the number of positives of each sample.
    """
    prob = torch.sigmoid(score_logits.float()).clamp(1e-4, 1 - 1e-4)
    heatmap = heatmap.float()
    positive = heatmap.eq(1).float()
    negative_weight = (1 - heatmap).pow(4)
    pos_term = torch.log(prob) * (1 - prob).pow(2) * positive
    neg_term = torch.log(1 - prob) * prob.pow(2) * negative_weight * (1 - positive)
    dims = tuple(range(1, score_logits.dim()))
    num_positive = positive.sum(dim=dims).clamp(min=1)
    return -(pos_term.sum(dim=dims) + neg_term.sum(dim=dims)) / num_positive


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per sample, a weighted mean over the cells (HCAT, TransT style)."""
    per_cell = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    dims = tuple(range(1, logits.dim()))
    return (per_cell * weights).sum(dim=dims) / weights.sum(dim=dims).clamp(min=EPS)


# ------------------------------------------------------------------------------------------
# Distributions over positions (corner maps and box-side bins)


def bin_centres(bins: int, like: torch.Tensor) -> torch.Tensor:
    return (torch.arange(bins, device=like.device, dtype=torch.float32) + 0.5) / bins


def corner_boxes(corner_logits: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) corner logits -> (N, 4) xyxy by soft-argmax over cell centres."""
    n, _, height, width = corner_logits.shape
    prob = corner_logits.float().flatten(2).softmax(dim=-1).reshape(n, 2, height, width)
    xs = bin_centres(width, prob)
    ys = bin_centres(height, prob)
    ex = (prob.sum(dim=2) * xs).sum(dim=-1)  # (N, 2): x1, x2
    ey = (prob.sum(dim=3) * ys).sum(dim=-1)  # (N, 2): y1, y2
    return torch.stack([ex[:, 0], ey[:, 0], ex[:, 1], ey[:, 1]], dim=-1)


def corner_marginals(corner_logits: torch.Tensor) -> torch.Tensor:
    """Paper (MixFormerV2) Eq. 4: (N, 2, H, W) corner logits -> (N, 4, W) side distributions.

    Rows in box_logits order x1, y1, x2, y2: the top-left map summed over rows gives x1 and
    over columns gives y1; the bottom-right map gives x2 and y2. Needs a square map.
    """
    n, _, height, width = corner_logits.shape
    if height != width:
        raise ValueError(f"corner maps must be square to marginalise, got {height}x{width}")
    prob = corner_logits.float().flatten(2).softmax(dim=-1).reshape(n, 2, height, width)
    along_x = prob.sum(dim=2)  # (N, 2, W)
    along_y = prob.sum(dim=3)  # (N, 2, H)
    return torch.stack([along_x[:, 0], along_y[:, 0], along_x[:, 1], along_y[:, 1]], dim=1)


def rebin(prob: torch.Tensor, bins: int) -> torch.Tensor:
    """Distributions over uniform cells of [0, 1] moved to ``bins`` uniform cells, exactly.

    Each source cell's mass is spread uniformly over its interval; the target cells take the
    mass of their own interval (a linear interpolation of the cumulative distribution).
    """
    source = prob.shape[-1]
    if source == bins:
        return prob
    cdf = torch.cat([torch.zeros_like(prob[..., :1]), prob.cumsum(dim=-1)], dim=-1)
    edges = torch.linspace(0, source, bins + 1, device=prob.device, dtype=prob.dtype)
    low = edges.floor().clamp(max=source - 1).long()
    frac = edges - low.to(prob.dtype)
    at_edges = cdf[..., low] + frac * (cdf[..., low + 1] - cdf[..., low])
    return (at_edges[..., 1:] - at_edges[..., :-1]).clamp(min=0)


def distribution_kl(student_logits: torch.Tensor, teacher_prob: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) summed over the four sides, per sample (paper Eq. 5)."""
    log_student = student_logits.float().log_softmax(dim=-1)
    teacher_prob = teacher_prob.float()
    kl = teacher_prob * (torch.log(teacher_prob.clamp(min=1e-12)) - log_student)
    return kl.sum(dim=-1).sum(dim=-1)


def side_distribution_targets(box_xyxy: torch.Tensor, bins: int) -> torch.Tensor:
    """(N, 4) xyxy -> (N, 4, bins): each side's mass split between the two nearest centres.

    The expectation over bin centres of this distribution is the side itself (clamped to the
    outermost centres), so it is the "box-side distribution" label of the ground truth.
    """
    position = (box_xyxy.float().clamp(0, 1) * bins - 0.5).clamp(0, bins - 1)
    low = position.floor().long().clamp(max=bins - 1)
    high = (low + 1).clamp(max=bins - 1)
    frac = position - low.float()
    target = torch.zeros(*box_xyxy.shape, bins, device=box_xyxy.device)
    target.scatter_add_(-1, low.unsqueeze(-1), (1 - frac).unsqueeze(-1))
    target.scatter_add_(-1, high.unsqueeze(-1), frac.unsqueeze(-1))
    return target


def distribution_boxes(box_logits: torch.Tensor) -> torch.Tensor:
    """(N, 4, bins) logits -> (N, 4) xyxy, expectation over bin centres."""
    prob = box_logits.float().softmax(dim=-1)
    return (prob * bin_centres(box_logits.shape[-1], prob)).sum(dim=-1)
