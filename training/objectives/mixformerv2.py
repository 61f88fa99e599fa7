"""MixFormerV2: supervised training, the two distillations, and the score head (paper Sec. 3).

Stages (``mixformerv2.stage``), run in this order to produce the zoo's entries:

``supervised`` -- ground-truth loss only: ``lambda_1 L1 + lambda_2 L_CIoU`` on the box given by
    the expectation of the four side distributions (the first two terms of Eq. 10; weights 5
    and 2 as in MixFormer; CIoU only where x2 >= x1 and y2 >= y1, see
    ``training.losses.ordered``).
``dense_to_sparse`` -- Sec. 3.2.1: the frozen MixViT corner-head teacher's corner maps are
    marginalised into side distributions (Eq. 4; rebinned exactly to the student's bins) and
    the student's distributions follow them by KL divergence (Eq. 5), plus the ground-truth
    terms. With ``student_init: teacher`` the student's backbone starts as the teacher's.
``deep_to_shallow`` -- Sec. 3.2.2: the student is a complete copy of the frozen teacher (a
    MixFormerV2, e.g. the 12-layer one, or the 8-layer one as the intermediate teacher of the
    4-layer model); the layers in ``eliminate_layers`` decay by the cosine schedule over the
    first ``prune_epochs`` epochs and are removed at the end. Losses: ground truth, KL between
    the teacher's and the student's box distributions, and L2 feature mimicking between the
    student's and the teacher's layer outputs at matched positions (Eq. 6). When the target
    entry has a smaller MLP ratio, the student is the MLP-reduced copy of the teacher
    (``w' = w[:d1', :d2']``): that is the MLP-reduction step (with no layer eliminated).
``score_head`` -- Sec. 3.3: everything frozen except the score MLP, trained with binary
    cross-entropy to tell pairs whose search crop holds the target from pairs whose search
    crop comes from another sequence (set ``data.negative_prob``, e.g. 0.5).

Outside the score_head stage the score MLP is frozen: no loss reaches it.

Distillation terms: Eq. 5 sums the KL over the four sides and Eq. 6 the L2 over the matched
layers (``mixformerv2.distillation_reduction: sum``); the authors' code averages both (their
``KLDivLoss`` terms / 4 and one ``mse_loss`` over the stacked layers), and its weights
(``CORNER_WEIGHT`` 5.0, ``FEAT_WEIGHT`` 0.2) are given for that form (``mean``, set by the
MixFormerV2 configs).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ros_tracker.zoo.checkpoints import load_weights
from training.depth_pruning import (
    check_eliminated,
    copy_network,
    cosine_decay,
    joint_forward,
    matched_layers,
    reduce_mlp,
    remove_layers,
    set_residual_decay,
)
from training.losses import (
    ciou_loss,
    corner_marginals,
    distribution_boxes,
    distribution_kl,
    l1_loss,
    ordered,
    rebin,
)
from training.mixvit import TEACHER_NAME
from training.objectives.base import Batch, Objective, Stats

LOGGER = logging.getLogger("training")

DEFAULT_TEACHERS = {"dense_to_sparse": TEACHER_NAME, "deep_to_shallow": "mixformerv2_teacher"}


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


class MixFormerV2Objective(Objective):
    def __init__(self, config: Dict[str, Any], device: torch.device) -> None:
        super().__init__(config, device)
        self.settings = config["mixformerv2"]
        self.stage = self.settings["stage"]
        self.teacher: nn.Module = None  # type: ignore[assignment]
        self.eliminated: List[int] = []
        self.matched: List[int] = []
        self.target_card = None
        self.ddp_find_unused_parameters = self.stage == "deep_to_shallow"

    # -- setup --------------------------------------------------------------------------------

    def _load_teacher(self) -> nn.Module:
        from training.models import create_network

        name = self.settings["teacher_model"] or DEFAULT_TEACHERS[self.stage]
        teacher = create_network(name, self.settings["teacher_overrides"])
        if self.settings["teacher_weights"]:
            load_weights(teacher, self.settings["teacher_weights"])
        else:
            LOGGER.warning("mixformerv2.teacher_weights is empty: the teacher is random")
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        return teacher.eval()

    def build(self, network: nn.Module) -> nn.Module:
        if self.stage == "dense_to_sparse":
            self.teacher = self._load_teacher()
            if (
                self.settings["student_init"] == "teacher"
                and not self.config["model"]["init_weights"]
            ):
                own = network.state_dict()
                shared = {
                    k: v
                    for k, v in self.teacher.state_dict().items()
                    if k in own and own[k].shape == v.shape
                }
                own.update(shared)
                network.load_state_dict(own)
                LOGGER.info("student backbone from the teacher: %d tensors", len(shared))
            return network
        if self.stage != "deep_to_shallow":
            return network
        if self.config["model"]["init_weights"]:
            raise ValueError(
                "mixformerv2.stage=deep_to_shallow starts the student as a copy of the teacher; "
                "leave model.init_weights empty and set mixformerv2.teacher_weights"
            )
        self.teacher = self._load_teacher()
        student = copy_network(self.teacher)
        student.requires_grad_(True)
        if student.config.mlp_ratio != network.config.mlp_ratio:
            student = reduce_mlp(student, network.config.mlp_ratio)
        depth = len(student.blocks)
        self.eliminated = check_eliminated(depth, self.settings["eliminate_layers"])
        expected = replace(
            student.config,
            depth=depth - len(self.eliminated),
            drop_path_rate=network.config.drop_path_rate,
        )
        if expected != network.config:
            raise ValueError(
                f"the student pruned from the teacher would be {expected}, but model "
                f"{self.config['model']['name']!r} is {network.config}: adjust "
                "mixformerv2.eliminate_layers, the teacher or model.overrides"
            )
        self.matched = matched_layers(depth, self.eliminated, self.settings["feature_layers"])
        self.target_card = network.card
        student.train()
        return student

    def teachers(self) -> Tuple[nn.Module, ...]:
        return (self.teacher,) if self.teacher is not None else ()

    def trainable(self, name: str) -> bool:
        if self.stage == "score_head":
            return name.startswith("score_head.")
        return not name.startswith("score_head.")

    def on_progress(self, network: nn.Module, progress: float) -> Dict[str, float]:
        if not self.eliminated:
            return {}
        gamma = cosine_decay(progress, float(self.settings["prune_epochs"]))
        set_residual_decay(network, self.eliminated, gamma)
        return {"gamma": gamma}

    # -- training step ------------------------------------------------------------------------

    def forward(self, network: nn.Module, batch: Batch) -> Dict[str, Any]:
        templates = batch["templates"]
        online = templates[:, 1] if templates.shape[1] > 1 else templates[:, 0]
        template, search = templates[:, 0], batch["search"]
        if self.stage == "deep_to_shallow":
            outputs = joint_forward(network, template, online, search)
        else:
            outputs = network.forward_joint(template, online, search)
        if self.teacher is not None:
            with torch.no_grad():
                outputs["teacher"] = self.teacher.forward_joint(
                    template, online, search, return_layers=self.stage == "deep_to_shallow"
                )
        return outputs

    def loss(self, outputs: Dict[str, Any], batch: Batch) -> Tuple[torch.Tensor, Stats]:
        settings = self.settings
        weights = self.loss_config
        positive = batch["positive"].float()
        if self.stage == "score_head":
            logits = outputs["score_logit"][:, 0].float()
            bce = F.binary_cross_entropy_with_logits(logits, positive)
            accuracy = ((logits > 0).float() == positive).float().mean()
            return weights["score_weight"] * bce, {"score_bce": bce.detach(), "score_acc": accuracy}
        box_logits = outputs["box_logits"]
        boxes = distribution_boxes(box_logits)
        target = batch["search_box"].float()
        l1 = _weighted_mean(l1_loss(boxes, target), positive)
        ciou_per_box, iou = ciou_loss(boxes, target)
        ciou = _weighted_mean(ciou_per_box * ordered(boxes).float(), positive)
        total = weights["l1_weight"] * l1 + weights["ciou_weight"] * ciou
        stats: Stats = {
            "l1": l1.detach(),
            "ciou": ciou.detach(),
            "iou": _weighted_mean(iou, positive),
        }
        if weights["distribution_weight"] > 0:
            ce = -(batch["side_distribution"] * box_logits.float().log_softmax(-1)).sum(-1).sum(-1)
            ce = _weighted_mean(ce, positive)
            total = total + weights["distribution_weight"] * ce
            stats["side_ce"] = ce.detach()
        teacher = outputs.get("teacher")
        averaged = settings["distillation_reduction"] == "mean"
        sides = box_logits.shape[1]
        if self.stage == "dense_to_sparse":
            marginals = rebin(corner_marginals(teacher["corner_logits"]), box_logits.shape[-1])
            kl = distribution_kl(box_logits, marginals).mean()
            if averaged:
                kl = kl / sides
            total = total + settings["logits_weight"] * kl
            stats["kl"] = kl.detach()
        elif self.stage == "deep_to_shallow":
            teacher_prob = teacher["box_logits"].float().softmax(dim=-1)
            kl = distribution_kl(box_logits, teacher_prob).mean()
            feature = sum(
                F.mse_loss(outputs["layer_tokens"][p].float(), teacher["layer_tokens"][p].float())
                for p in self.matched
            )
            if averaged:
                kl = kl / sides
                feature = feature / max(1, len(self.matched))
            total = total + settings["logits_weight"] * kl + settings["feature_weight"] * feature
            stats.update({"kl": kl.detach(), "feature": feature.detach()})
        return total, stats

    # -- result -------------------------------------------------------------------------------

    def finalize(self, network: nn.Module, final: bool = True) -> nn.Module:
        if self.stage != "deep_to_shallow":
            return network
        gammas = [network.blocks[i].residual_decay for i in self.eliminated]
        if final and any(g != 0.0 for g in gammas):
            LOGGER.warning(
                "eliminated layers still have residual decay %s (training ended before "
                "mixformerv2.prune_epochs): removing them changes the outputs",
                gammas,
            )
        pruned = remove_layers(network, self.eliminated)
        pruned.card = self.target_card
        return pruned
