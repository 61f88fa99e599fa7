"""HiT (and the MixViT corner teacher) and HCAT: box losses on the networks' own heads.

* HiT (paper Eq. 4): the corner maps' soft-argmax box against the ground truth,
  ``lambda_G GIoU + lambda_l L1`` with weights 2 and 5 (GIoU only for ordered boxes, see
  ``training.losses.ordered``). The MixViT corner-head teacher of
  MixFormerV2's dense-to-sparse distillation is trained the same way (STARK's corner loss).
* HCAT (paper Sec. 3.4): binary cross-entropy over all search cells, negatives down-weighted
  by 16 (TransT's weights: classification 8.334), and GIoU + L1 between the boxes predicted at
  the positive cells (centres inside the target) and the target. The authors' code (TransT's
  SetCriterion) sums the L1 over the four coordinates before dividing by the number of
  positives (``loss.l1_reduction: sum``, set by the HCAT configs); ``mean`` averages them
  (4x weaker at the same weight).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from torch import nn

from training.losses import (
    corner_boxes,
    cxcywh_to_xyxy,
    giou_loss,
    l1_loss,
    ordered,
    weighted_bce,
)
from training.objectives.base import Batch, Objective, Stats, template_and_search


class CornerObjective(Objective):
    """GIoU + L1 on soft-argmax corners: HiT, and the MixViT teacher (corner_teacher stage)."""

    def forward(self, network: nn.Module, batch: Batch) -> Dict[str, Any]:
        if hasattr(network, "forward_joint"):  # the MixViT teacher takes two templates
            templates = batch["templates"]
            online = templates[:, 1] if templates.shape[1] > 1 else templates[:, 0]
            return network.forward_joint(templates[:, 0], online, batch["search"])
        return network(*template_and_search(batch, network))

    def loss(self, outputs: Dict[str, Any], batch: Batch) -> Tuple[torch.Tensor, Stats]:
        boxes = corner_boxes(outputs["corner_logits"])
        target = batch["search_box"].float()
        giou, iou = giou_loss(boxes, target)
        giou = giou * ordered(boxes).float()  # see losses.ordered
        l1 = l1_loss(boxes, target)
        weights = self.loss_config
        total = weights["giou_weight"] * giou.mean() + weights["l1_weight"] * l1.mean()
        return total, {"giou": giou.mean(), "l1": l1.mean(), "iou": iou.mean()}


class HCATObjective(Objective):
    def forward(self, network: nn.Module, batch: Batch) -> Dict[str, Any]:
        return network(*template_and_search(batch, network))

    def loss(self, outputs: Dict[str, Any], batch: Batch) -> Tuple[torch.Tensor, Stats]:
        weights = self.loss_config
        labels = batch["cls_labels"]
        cls = weighted_bce(outputs["cls_logits"], labels, batch["cls_weights"]).mean()
        positive = (labels > 0) & (batch["positive"][:, None] > 0)
        target = batch["search_box"].float()[:, None].expand(-1, labels.shape[1], -1)
        boxes = cxcywh_to_xyxy(outputs["boxes"].float())
        total = weights["cls_weight"] * cls
        stats: Stats = {"cls": cls.detach()}
        if bool(positive.any()):
            giou, iou = giou_loss(boxes[positive], target[positive])
            l1 = l1_loss(boxes[positive], target[positive])
            if weights["l1_reduction"] == "sum":
                l1 = l1 * boxes.shape[-1]  # per box: the sum of the coordinate errors
            total = total + weights["giou_weight"] * giou.mean() + weights["l1_weight"] * l1.mean()
            stats.update({"giou": giou.mean(), "l1": l1.mean(), "iou": iou.mean()})
        else:  # keep the regression head in the graph (DDP) and the stats' keys stable
            zero = 0.0 * boxes.sum()
            total = total + zero
            stats.update({"giou": zero.detach(), "l1": zero.detach(), "iou": zero.detach()})
        return total, stats
