"""Training validation reports whether the network follows its template (template_similarity)
beside the tracking metrics, for the networks that have a score map."""

from __future__ import annotations

import torch
from conftest import TINY_MODELS

from ros_tracker.zoo.registry import create_model
from training.validation import load_validation_sets, validate

ENTRY = {"type": "synthetic", "sequences": 3, "frames": 4, "seed": 61, "root": "", "split": ""}


def _metrics(family, tmp_path):
    torch.manual_seed(0)
    name, overrides = TINY_MODELS[family]
    network = create_model(name, **overrides)
    sets = load_validation_sets([dict(ENTRY)], str(tmp_path))
    return validate(network, sets)


def test_hcat_validation_reports_template_similarity(tmp_path):
    metrics = _metrics("hcat", tmp_path)
    assert 0.0 <= metrics["auc"] <= 1.0
    assert -1.0 <= metrics["template_similarity"] <= 1.0


def test_networks_without_a_score_map_report_none(tmp_path):
    metrics = _metrics("hit", tmp_path)
    assert "template_similarity" not in metrics and 0.0 <= metrics["auc"] <= 1.0
