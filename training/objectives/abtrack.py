"""ABTrack: center-head losses, the adaptive block sparsity loss and ViT pruning (paper Sec. 3).

Two stages, in the paper's order (Sec. 3.1: pruning first, then the BDMs are trained on the
pruned model):

``vtp`` -- Vision Transformer Pruning. Every block runs (the bypass decisions are frozen and
    unused); the loss is the tracking loss plus ``alpha sum_k (|D1^k|_1 + |D2^k|_1)`` (Eq. 6)
    on the relaxed dimension-reduction vectors. At the end, the vectors are binarized at the
    pruning ratio (``d* = floor(d (1 - mu) / heads) x heads`` kept per block, a multiple of the
    head count) and the masked dimensions are physically removed: the run's final weights are
    the pruned layout (``create_model(name, pruned=True)``).
``finetune`` -- the (pruned, or not) network with its Bypass Decision Modules: the zoo's
    ``forward_train`` (hard decisions forward, straight-through gradients) and the overall
    loss of Eq. 8, ``L_cls + 2 L_iou + 5 L_1 + gamma L_spar``.

Tracking loss (Eq. 8, OSTrack's head): weighted focal loss on the score map against the
Gaussian heatmap, and GIoU + L1 on the box read at the predicted score peak.

Block sparsity loss (Eq. 2), per sample: ``|mean_i p_i - tau|``, ``p_i`` the probability of
bypassing block i, tau a function of that sample's GIoU loss against the batch mean, treated
as a constant. The paper prints ``tau = clip(tau0 + rho (L_iou - mean L_iou), 0, 1)`` with
rho = 0.1 > 0, and says a larger tau makes the model sparser: then a harder sample (larger
GIoU loss) would be pushed to bypass *more* blocks. Its text says the opposite ("a stricter
penalty imposed when the tracking task is easy and a less strict penalty when the task is
challenging") and Fig. 3 shows more blocks kept on hard frames (occlusion, blur, similar
objects). The text and the figure are what the method is for, so by default
(``abtrack.sparsity_tau: text``) tau decreases with difficulty:
``tau = clip(tau0 - rho (L_iou - mean L_iou), 0, 1)`` with the paper's rho = 0.1;
``sparsity_tau: equation`` keeps the printed sign.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from torch import nn

from ros_tracker.zoo.abtrack import binarize_network, prune_network
from training.losses import giou_loss, l1_loss, weighted_focal_loss
from training.objectives.base import Batch, Objective, Stats, template_and_search


def boxes_at_peak(score_map: torch.Tensor, offset_map: torch.Tensor, size_map: torch.Tensor):
    """(N, 4) xyxy read at each sample's highest score (the runtime's rule without window)."""
    n, _, height, width = score_map.shape
    index = score_map.flatten(1).argmax(dim=1)
    iy = torch.div(index, width, rounding_mode="floor")
    ix = index - iy * width
    offset = offset_map.flatten(2).gather(2, index[:, None, None].expand(-1, 2, 1))[..., 0]
    size = size_map.flatten(2).gather(2, index[:, None, None].expand(-1, 2, 1))[..., 0]
    cx = (ix.to(offset.dtype) + offset[:, 0]) / width
    cy = (iy.to(offset.dtype) + offset[:, 1]) / height
    w, h = size[:, 0], size[:, 1]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1).float()


SPARSITY_TAU_FORMS = ("text", "equation")


def sparsity_tau(giou: torch.Tensor, tau0: float, slope: float, form: str = "text") -> torch.Tensor:
    """The block sparsity function per sample (no gradient); see the module docstring.

    ``form="text"``: tau falls with the sample's difficulty (hard samples keep blocks);
    ``"equation"``: Eq. 2's printed sign.
    """
    if form not in SPARSITY_TAU_FORMS:
        raise ValueError(f"sparsity tau form must be one of {SPARSITY_TAU_FORMS}, got {form!r}")
    giou = giou.detach()
    sign = -1.0 if form == "text" else 1.0
    return (tau0 + sign * slope * (giou - giou.mean())).clamp(0.0, 1.0)


def block_sparsity_loss(bypass_probs: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """|mean over gated blocks of p_i - tau| per sample."""
    return (bypass_probs.float().mean(dim=1) - tau).abs()


class ABTrackObjective(Objective):
    def __init__(self, config: Dict[str, Any], device: torch.device) -> None:
        super().__init__(config, device)
        self.settings = config["abtrack"]
        self.stage = self.settings["stage"]

    def build(self, network: nn.Module) -> nn.Module:
        if self.stage == "vtp" and network.config.pruned_dims is not None:
            raise ValueError("abtrack.stage=vtp needs the unpruned network (abtrack.pruned=false)")
        return network

    def trainable(self, name: str) -> bool:
        if self.stage == "vtp":
            return not name.startswith("decisions.")
        # Binarized DR vectors stay fixed while fine-tuning (they are masks now).
        return not (name.endswith(".d1") or name.endswith(".d2"))

    def forward(self, network: nn.Module, batch: Batch) -> Dict[str, Any]:
        template, search = template_and_search(batch, network)
        if self.stage == "finetune":
            return network.forward_train(template, search)
        (template_tokens,) = network.encode_template(template)
        tokens = network.run_stem(template_tokens, search)
        for index in range(len(network.decisions)):
            tokens = network.gated_block(index)(tokens)
        outputs: Dict[str, Any] = dict(zip(network.card.output_names, network.run_head(tokens)))
        outputs["dr_l1"] = network.dimension_reduction_l1()
        return outputs

    def loss(self, outputs: Dict[str, Any], batch: Batch) -> Tuple[torch.Tensor, Stats]:
        weights = self.loss_config
        focal = weighted_focal_loss(outputs["score_map"], batch["heatmap"]).mean()
        boxes = boxes_at_peak(outputs["score_map"], outputs["offset_map"], outputs["size_map"])
        target = batch["search_box"].float()
        giou, iou = giou_loss(boxes, target)
        l1 = l1_loss(boxes, target)
        total = (
            weights["focal_weight"] * focal
            + weights["giou_weight"] * giou.mean()
            + weights["l1_weight"] * l1.mean()
        )
        stats: Stats = {"focal": focal.detach(), "giou": giou.mean(), "l1": l1.mean()}
        stats["iou"] = iou.mean()
        if self.stage == "vtp":
            dr_l1 = outputs["dr_l1"]
            total = total + self.settings["dr_l1_weight"] * dr_l1
            stats["dr_l1"] = dr_l1.detach()
        probs = outputs.get("bypass_probs")
        if self.stage == "finetune" and probs is not None:
            tau = sparsity_tau(
                giou,
                self.settings["tau0"],
                self.settings["sparsity_slope"],
                self.settings["sparsity_tau"],
            )
            sparsity = block_sparsity_loss(probs, tau).mean()
            total = total + self.settings["sparsity_weight"] * sparsity
            stats["sparsity"] = sparsity.detach()
            stats["bypass_prob"] = probs.detach().float().mean()
            stats["bypassed"] = outputs["bypassed"].float().mean()
        return total, stats

    def finalize(self, network: nn.Module, final: bool = True) -> nn.Module:
        """vtp: binarize at the pruning ratio and remove the masked dimensions."""
        if self.stage != "vtp":
            return network
        binarize_network(network, self.settings["pruning_ratio"])
        return prune_network(network)
