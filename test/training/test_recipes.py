"""The training recipes state the papers' (and the authors' code's) values."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import ROOT, TINY_MODELS, tiny_config

from ros_tracker.zoo import create_model, get_card
from training.config import load_config
from training.mixvit import TEACHERS
from training.models import BACKBONE_PREFIXES, create_network
from training.objectives.abtrack import block_sparsity_loss, sparsity_tau
from training.objectives.mixformerv2 import MixFormerV2Objective
from training.objectives.simple import HCATObjective
from training.trainer import build_optimizer

CONFIGS = os.path.join(ROOT, "training", "configs")


def config(name: str):
    return load_config(os.path.join(CONFIGS, name))


def group_rates(network, training, family):
    optimizer = build_optimizer(network, training, family)
    return {group["group"]: group["lr"] for group in optimizer.param_groups}


# -- HiT: the LeViT trains at the full rate ------------------------------------------------


@pytest.mark.parametrize("name", ["hit_base.yaml", "hit_small.yaml", "hit_tiny.yaml"])
def test_hit_trains_its_levit_at_the_papers_5e_4(name):
    cfg = config(name)
    assert cfg["training"]["lr"] == 5e-4 and cfg["training"]["backbone_lr_scale"] == 1.0
    assert cfg["training"]["epochs"] == 1500 and cfg["training"]["lr_drop_epochs"] == [1200]
    network = create_model("hit_tiny", **TINY_MODELS["hit"][1])
    rates = group_rates(network, cfg["training"], "hit")
    assert rates["backbone"] == rates["head"] == 5e-4


# -- HCAT: L1 summed over the four coordinates, divided by the positives --------------------


def hcat_batch(network):
    torch.manual_seed(0)
    cells = network.card.feature_size**2
    labels = torch.zeros(2, cells)
    labels[0, :3] = 1.0
    labels[1, 10:12] = 1.0
    return {
        "cls_labels": labels,
        "cls_weights": torch.ones(2, cells),
        "positive": torch.ones(2),
        "search_box": torch.tensor([[0.3, 0.3, 0.6, 0.7], [0.2, 0.4, 0.5, 0.6]]),
    }, {"cls_logits": torch.randn(2, cells), "boxes": torch.rand(2, cells, 4) * 0.5 + 0.25}


@pytest.mark.parametrize("name", ["hcat.yaml", "hcat_n1.yaml"])
def test_hcat_l1_sums_the_coordinates_before_dividing_by_the_positives(name, tmp_path):
    cfg = config(name)
    assert cfg["loss"]["l1_reduction"] == "sum" and cfg["loss"]["l1_weight"] == 5.0
    assert (cfg["loss"]["giou_weight"], cfg["loss"]["cls_weight"]) == (2.0, 8.334)
    network = create_model("hcat", **TINY_MODELS["hcat"][1])
    batch, outputs = hcat_batch(network)
    stats = {}
    for reduction in ("sum", "mean"):
        tiny = tiny_config(tmp_path, "hcat", loss={"l1_reduction": reduction})
        _, stats[reduction] = HCATObjective(tiny, torch.device("cpu")).loss(outputs, batch)
    # The authors' criterion: loss_bbox.sum() / num_boxes over the positive cells.
    positive = batch["cls_labels"] > 0
    cx, cy, w, h = outputs["boxes"][positive].unbind(-1)
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    target = batch["search_box"][:, None].expand(-1, positive.shape[1], -1)[positive]
    expected = (boxes - target).abs().sum() / positive.sum()
    assert torch.allclose(stats["sum"]["l1"], expected)
    assert torch.allclose(stats["mean"]["l1"], expected / 4)
    assert config("_base.yaml")["loss"]["l1_reduction"] == "mean"  # the other families'


# -- MixFormerV2-B: MixViT-L teacher with the pyramidal corner head --------------------------


def test_mixformerv2_b_is_distilled_from_mixvit_l_with_the_pyramidal_corner_head():
    stage1 = config("mixformerv2_d2s.yaml")
    assert stage1["model"]["name"] == "mixformerv2_teacher"  # the 12-layer token student
    assert stage1["mixformerv2"]["teacher_model"] == "mixvit_l_teacher"
    teacher_cfg = config("mixvit_l_teacher.yaml")
    assert teacher_cfg["model"]["name"] == "mixvit_l_teacher"
    # MixViT-L: ViT-L/16 (24 layers, width 1024, 16 heads), corner maps at stride 4.
    teacher = create_network(
        "mixvit_l_teacher", {"depth": 1, "template_size": 32, "search_size": 64}
    )
    assert teacher.head == "pyramid"
    assert (teacher.config.embed_dim, teacher.config.num_heads) == (1024, 16)
    assert TEACHERS["mixvit_l_teacher"][1]["depth"] == 24
    tiny = create_network(
        "mixvit_l_teacher",
        {"embed_dim": 32, "depth": 2, "num_heads": 2, "template_size": 32, "search_size": 64,
         "head_channels": 32},
    )  # fmt: skip
    x = torch.randn(1, 3, 64, 64)
    z = torch.randn(1, 3, 32, 32)
    corners = tiny.forward_joint(z, z, x)["corner_logits"]
    assert corners.shape == (1, 2, 16, 16)  # 4 x 4 ViT grid -> 16 x 16 corner maps
    corners.sum().backward()  # every branch of the pyramid trains
    assert all(p.grad is not None for n, p in tiny.named_parameters() if "top_left" in n)
    # The paper's alternative: MixViT-B with the plain corner head (MixFormerV2-B*, the S route).
    assert config("mixformerv2_d2s_s.yaml")["mixformerv2"]["teacher_model"] == "mixvit_teacher"


@pytest.mark.parametrize(
    "name", ["mixformerv2_d2s.yaml", "mixformerv2_b.yaml", "mixvit_l_teacher.yaml"]
)
def test_mixformerv2_b_rates_and_distillation_weights_are_the_authors(name):
    cfg = config(name)
    training, settings = cfg["training"], cfg["mixformerv2"]
    # LR 4e-4 with the ViT ("backbone", prediction tokens included) at x 0.1: 4e-5.
    assert training["lr"] == 4e-4 and training["backbone_lr_scale"] == 0.1
    assert (settings["logits_weight"], settings["feature_weight"]) == (5.0, 0.2)
    assert settings["distillation_reduction"] == "mean"
    assert cfg["data"]["max_gap"] == 200
    network = create_model("mixformerv2_b", **TINY_MODELS["mixformerv2"][1])
    rates = group_rates(network, training, "mixformerv2")
    assert rates["backbone"] == pytest.approx(4e-5) and rates["head"] == pytest.approx(4e-4)
    assert "prediction_tokens" in BACKBONE_PREFIXES["mixformerv2"]


def test_mixformerv2_b_removes_and_mimics_the_authors_layers():
    settings = config("mixformerv2_b.yaml")["mixformerv2"]
    assert settings["eliminate_layers"] == [0, 3, 6, 9]  # REMOVE_LAYERS
    assert settings["feature_layers"] == [2, 5, 8, 11]  # DISTILL_LAYERS_STUDENT / _TEACHER
    assert settings["prune_epochs"] == 40  # the paper's m
    assert config("mixformerv2_b_score.yaml")["training"]["lr"] == 1e-4


def test_mixformerv2_online_template_interval_is_the_papers_200():
    for name in ("mixformerv2_b", "mixformerv2_s"):
        card = get_card(name)
        assert (card.template_update_interval, card.template_update_threshold) == (200, 0.5)


def test_averaged_distillation_is_the_authors_kl_over_the_sides(tmp_path):
    """mean: KLDivLoss(batchmean) per side, averaged over the four sides, as their actor."""
    torch.manual_seed(1)
    student_logits = torch.randn(3, 4, 16)
    teacher_logits = torch.randn(3, 4, 16)
    kls = {}
    for reduction in ("sum", "mean"):
        cfg = tiny_config(
            tmp_path,
            "mixformerv2",
            mixformerv2={"stage": "deep_to_shallow", "distillation_reduction": reduction},
        )
        objective = MixFormerV2Objective(cfg, torch.device("cpu"))
        objective.matched = [0, 1]
        layer = [torch.randn(3, 5, 8), torch.randn(3, 5, 8)]
        outputs = {
            "box_logits": student_logits,
            "score_logit": torch.zeros(3, 1),
            "layer_tokens": layer,
            "teacher": {"box_logits": teacher_logits, "layer_tokens": [t + 1 for t in layer]},
        }
        batch = {"positive": torch.ones(3), "search_box": torch.tensor([[0.2, 0.2, 0.6, 0.6]] * 3)}
        _, kls[reduction] = objective.loss(outputs, batch)
    their_kl = (
        sum(
            torch.nn.functional.kl_div(
                student_logits[:, side].log_softmax(-1),
                teacher_logits[:, side].softmax(-1),
                reduction="batchmean",
            )
            for side in range(4)
        )
        / 4
    )
    assert torch.allclose(kls["mean"]["kl"], their_kl, atol=1e-6)
    assert torch.allclose(kls["sum"]["kl"], 4 * their_kl, atol=1e-6)
    assert torch.allclose(kls["mean"]["feature"], torch.tensor(1.0))  # MSE of a +1 offset
    assert torch.allclose(kls["sum"]["feature"], torch.tensor(2.0))  # summed over 2 layers


# -- ABTrack: hard samples keep more blocks ---------------------------------------------------


def test_abtrack_tau_lets_hard_samples_keep_more_blocks():
    giou = torch.tensor([0.2, 0.5, 0.8])  # easy, average, hard (GIoU loss)
    tau = sparsity_tau(giou, tau0=0.4, slope=0.1)  # the default: the paper's text
    assert tau[2] < 0.4 < tau[0]  # the hard sample's target bypass rate is the lowest
    assert torch.allclose(tau, 0.4 - 0.1 * (giou - giou.mean()))
    probs = torch.full((3, 9), 0.4, requires_grad=True)
    block_sparsity_loss(probs, tau).sum().backward()
    # Gradient descent lowers the hard sample's bypass probabilities (keeps its blocks) and
    # raises the easy one's.
    assert (probs.grad[2] > 0).all() and (probs.grad[0] < 0).all()
    printed = sparsity_tau(giou, tau0=0.4, slope=0.1, form="equation")
    assert printed[2] > 0.4 > printed[0]  # Eq. 2 as printed does the opposite
    with pytest.raises(ValueError, match="sparsity tau form"):
        sparsity_tau(giou, 0.4, 0.1, form="inverse")


@pytest.mark.parametrize(
    "name", ["abtrack_vit_tiny.yaml", "abtrack_deit_tiny.yaml", "abtrack_avit_tiny.yaml"]
)
def test_abtrack_configs_use_the_papers_rho_and_the_texts_direction(name):
    settings = config(name)["abtrack"]
    assert (settings["tau0"], settings["sparsity_slope"]) == (0.4, 0.1)
    assert settings["sparsity_tau"] == "text" and settings["sparsity_weight"] == 5.0
    with open(os.path.join(CONFIGS, name)) as handle:
        assert "Fig. 3" in handle.read()  # the reasoning is written in the config


# -- ABTrack-AViT -----------------------------------------------------------------------------


def test_abtrack_avit_tiny_recipe():
    vtp, finetune = config("abtrack_avit_tiny_vtp.yaml"), config("abtrack_avit_tiny.yaml")
    assert vtp["model"]["name"] == finetune["model"]["name"] == "abtrack_avit_tiny"
    assert vtp["abtrack"]["stage"] == "vtp" and finetune["abtrack"]["stage"] == "finetune"
    assert finetune["model"]["init_weights"] == "runs/abtrack_avit_tiny_vtp/final.safetensors"
    assert finetune["training"]["lr"] * finetune["training"]["backbone_lr_scale"] == 4e-5
