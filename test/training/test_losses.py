"""Box losses and the distribution tools of MixFormerV2's distillation."""

from __future__ import annotations

import math

import pytest
import torch

from training import losses
from training.losses import (
    bin_centres,
    ciou_loss,
    corner_marginals,
    distribution_boxes,
    distribution_kl,
    giou_loss,
    rebin,
    side_distribution_targets,
    weighted_bce,
    weighted_focal_loss,
)


def test_giou_and_ciou_are_zero_for_equal_boxes_and_known_for_disjoint_ones():
    box = torch.tensor([[0.1, 0.2, 0.5, 0.6]])
    assert giou_loss(box, box)[0].item() == pytest.approx(0.0, abs=1e-6)
    assert ciou_loss(box, box)[0].item() == pytest.approx(0.0, abs=1e-6)
    a = torch.tensor([[0.0, 0.0, 0.2, 0.2]])
    b = torch.tensor([[0.4, 0.0, 0.6, 0.2]])
    # IoU 0, enclosing 0.6 x 0.2 = 0.12, union 0.08: GIoU = -(0.12 - 0.08) / 0.12
    assert giou_loss(a, b)[0].item() == pytest.approx(1 + 1 / 3, abs=1e-5)
    # CIoU: IoU 0, centre distance 0.4^2, enclosing diagonal 0.6^2 + 0.2^2, same aspect
    assert ciou_loss(a, b)[0].item() == pytest.approx(1 + 0.16 / 0.40, abs=1e-5)


def test_rebin_preserves_mass_and_mean():
    torch.manual_seed(0)
    prob = torch.rand(3, 4, 18).softmax(-1)
    centres = bin_centres(18, prob)
    for bins in (96, 18, 7):
        moved = rebin(prob, bins)
        assert moved.shape == (3, 4, bins)
        assert torch.allclose(moved.sum(-1), torch.ones(3, 4), atol=1e-5)
        mean_before = (prob * centres).sum(-1)
        mean_after = (moved * bin_centres(bins, moved)).sum(-1)
        # exact for piecewise-uniform densities up to the half-bin rounding of the target grid
        assert torch.allclose(mean_before, mean_after, atol=0.5 / bins + 1e-6)


def test_corner_marginals_match_the_soft_argmax_box():
    torch.manual_seed(1)
    corners = torch.randn(2, 2, 8, 8) * 3
    marginals = corner_marginals(corners)
    assert marginals.shape == (2, 4, 8)
    assert torch.allclose(marginals.sum(-1), torch.ones(2, 4), atol=1e-5)
    expected = losses.corner_boxes(corners)
    from_marginals = (marginals * bin_centres(8, marginals)).sum(-1)
    assert torch.allclose(expected, from_marginals, atol=1e-5)


def test_side_distribution_targets_have_the_box_as_expectation():
    box = torch.tensor([[0.13, 0.4, 0.77, 0.9]])
    target = side_distribution_targets(box, 16)
    assert torch.allclose(target.sum(-1), torch.ones(1, 4))
    assert torch.allclose((target * bin_centres(16, target)).sum(-1), box, atol=1e-6)
    logits = torch.log(target.clamp(min=1e-9))
    assert torch.allclose(distribution_boxes(logits), box, atol=1e-4)
    assert distribution_kl(logits, target).item() == pytest.approx(0.0, abs=1e-4)


def test_focal_and_bce_prefer_the_right_answer():
    heatmap = torch.zeros(1, 1, 4, 4)
    heatmap[0, 0, 1, 2] = 1.0
    heatmap[0, 0, 1, 1] = 0.5
    good = torch.full((1, 1, 4, 4), -4.0)
    good[0, 0, 1, 2] = 4.0
    bad = -good
    assert weighted_focal_loss(good, heatmap).item() < weighted_focal_loss(bad, heatmap).item()
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    weights = torch.tensor([[1.0, 1 / 16, 1 / 16]])
    logits = torch.tensor([[0.0, 0.0, 0.0]])
    # all cells at p = 0.5: the weighted mean of log 2
    assert weighted_bce(logits, labels, weights).item() == pytest.approx(math.log(2), abs=1e-6)


def test_inverted_boxes_are_flagged_because_giou_gives_them_no_overlap_gradient():
    target = torch.tensor([[0.2, 0.2, 0.6, 0.6]])
    inverted = torch.tensor([[0.45, 0.45, 0.35, 0.35]], requires_grad=True)  # inside, x2 < x1
    loss, _ = giou_loss(inverted, target)
    loss.sum().backward()
    assert loss.item() == pytest.approx(1.0) and inverted.grad.abs().max().item() == 0.0
    proper = torch.tensor([[0.35, 0.35, 0.45, 0.45]], requires_grad=True)
    loss, _ = giou_loss(proper, target)
    loss.sum().backward()
    assert loss.item() < 1.0 and proper.grad.abs().max().item() > 0.0
    assert losses.ordered(torch.cat([proper, inverted]).detach()).tolist() == [True, False]
