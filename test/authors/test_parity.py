"""Converted weights reproduce the authors' code on the shared fixtures (fp32, CPU, 1e-4).

Each fixture state dict is written by the test as a release file in its trainer's format,
converted with the same code path as ``ros-tracker convert``, loaded the way the runtime
loads a ``.safetensors`` model, and run on the crops the authors' tracker fed their network.
The network outputs, the runtime's decoding and the tracker's box mapping are compared with
what the authors' code produced.
"""

from __future__ import annotations

import copy
from typing import Dict

import numpy as np
import pytest
import torch

from ros_tracker.runtime import reference_crops
from ros_tracker.runtime.boxes import clamp_centre, clip_with_margin
from ros_tracker.runtime.decoders import make_decoder
from ros_tracker.runtime.model_files import resolve_model
from ros_tracker.zoo import create_model
from ros_tracker.zoo.authors import hcat as hcat_authors
from ros_tracker.zoo.authors.convert import convert_release
from ros_tracker.zoo.levit import fold_batchnorm

from . import parity_fixtures as fx
from .release_files import write_release

TOLERANCE = 1e-4  # boxes, scores, probabilities (fp32, CPU)
TRAINERS = {"hit_tiny": "stark", "hcat": "pytracking", "mixformerv2_s": "stark"}
FRAME_SIZE = (352, 288)  # OTB-100 Jogging, the fixtures' frame


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Dict[str, object]:
    """model -> the converted network (loaded from the written .safetensors), converted once."""
    cache: Dict[str, object] = {}

    def get(model: str):
        if model not in cache:
            folder = tmp_path_factory.mktemp(model)
            release = write_release(
                str(folder / "release.pth.tar"), fx.authors_state(model), TRAINERS[model]
            )
            result = convert_release(model, release, str(folder / f"{model}.safetensors"))
            assert result.reader == "restricted"
            card = result.card  # the authors' trackers: no box policy of this project's
            assert (card.scale_penalty, card.size_lr, card.redetect_after) == (0.0, 0.0, 0)
            cache[model] = resolve_model(result.out).build_network().eval()
        return cache[model]

    return get


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / max(1.0, np.abs(theirs).max()))


# -- HiT-Tiny -------------------------------------------------------------------------------


def hit_forward(network, inputs):
    template, search = tensor(inputs["template"]), tensor(inputs["search"])
    with torch.no_grad():
        (tokens,) = network.encode_template(template)
        stages = network.backbone(torch.cat([network.backbone.stem(search), tokens], dim=1))
        (logits,) = network.track_search(tokens, search)
    return logits.numpy(), [s.numpy() for s in stages]


def test_hit_tiny_matches_the_authors_folded_and_unfolded(converted):
    network = converted("hit_tiny")
    card = network.card
    assert (card.coordinate_offset, card.crop_style) == (0.0, "stark")
    inputs = fx.arrays("hit_tiny", "inputs.npz")
    decode = make_decoder(card)
    for ours, reference in (
        (network, fx.arrays("hit_tiny", "outputs_unfused.npz")),
        (fold_batchnorm(copy.deepcopy(network)), fx.arrays("hit_tiny", "outputs.npz")),
    ):
        logits, stages = hit_forward(ours, inputs)
        box = np.array(decode({"corner_logits": logits}).box)
        assert np.abs(box - reference["pred_boxes"].reshape(4)).max() < TOLERANCE
        # Every stage's tokens: search first, the global token (mean of all) before stage 3's.
        stages[2] = np.concatenate([stages[2].mean(axis=1, keepdims=True), stages[2]], axis=1)
        for index, tokens in enumerate(stages):
            assert relative_error(tokens, reference[f"backbone_out_{index}"]) < TOLERANCE


# -- HCAT (ResNet-18, N = 2) ----------------------------------------------------------------


def hcat_forward(network, inputs):
    with torch.no_grad():
        features = network.backbone(tensor(inputs["z"]))
        state = network.encode_template(tensor(inputs["z"]))
        logits, boxes = network.track_search(*state, tensor(inputs["search"]))
    return features.numpy(), logits.numpy(), boxes.numpy()


def test_hcat_matches_the_authors(converted):
    network = converted("hcat")
    card = network.card
    assert network.config.sparse_residual == "doubled"
    assert (card.window_influence, card.crop_style, card.reported_score) == (
        0.42,
        "siamfc",
        "windowed",
    )
    inputs, reference = fx.arrays("hcat", "inputs.npz"), fx.arrays("hcat", "outputs.npz")
    features, logits, boxes = hcat_forward(network, inputs)
    assert relative_error(features, reference["zf_0"]) < TOLERANCE
    pos = fx.arrays("hcat", "outputs.npz")
    assert (
        np.abs(network.search_pos.T.reshape(1, 256, 16, 16).numpy() - pos["pos_search_0"]).max()
        < 1e-5
    )
    two_way = reference["pred_logits"][0]
    target = np.exp(two_way[:, 0]) / np.exp(two_way).sum(axis=1)
    ours = 1.0 / (1.0 + np.exp(-logits[0].astype(np.float64)))
    assert np.abs(ours - target).max() < TOLERANCE
    assert np.abs(boxes - reference["pred_boxes"]).max() < TOLERANCE
    expected = fx.decoded("hcat")
    decoded = make_decoder(card)({"cls_logits": logits, "boxes": boxes})
    assert np.abs(np.array(decoded.box) - expected["box_crop_norm_cxcywh"]).max() < TOLERANCE
    assert abs(decoded.score - expected["score"]) < TOLERANCE


def test_hcat_paper_residual_differs_from_the_authors_code(converted):
    """The switch matters: the same weights through the paper's Eq. 2 give other outputs."""
    network = converted("hcat")
    paper = create_model("hcat", sparse_residual="query").eval()
    paper.load_state_dict(network.state_dict())
    inputs, reference = fx.arrays("hcat", "inputs.npz"), fx.arrays("hcat", "outputs.npz")
    _, _, boxes = hcat_forward(paper, inputs)
    assert np.abs(boxes - reference["pred_boxes"]).max() > 1e-2


# -- MixFormerV2-S --------------------------------------------------------------------------


def test_mixformerv2_s_matches_the_authors(converted):
    network = converted("mixformerv2_s")
    card = network.card
    assert network.config.score_pooling == "per_token"
    assert (card.coordinate_offset, card.crop_style) == (0.0, "stark")
    assert (card.template_update_interval, card.template_update_threshold) == (200, 0.5)
    inputs = {k: tensor(v) for k, v in fx.arrays("mixformerv2_s", "inputs.npz").items()}
    reference = fx.arrays("mixformerv2_s", "outputs.npz")
    with torch.no_grad():
        state = network.encode_template(inputs["template"], inputs["online_template"])
        box_logits, score_logit = network.track_search(*state, inputs["search"])
        joint = network.forward_joint(
            inputs["template"], inputs["online_template"], inputs["search"], return_layers=True
        )
    decoded = make_decoder(card)(
        {"box_logits": box_logits.numpy(), "score_logit": score_logit.numpy()}
    )
    assert np.abs(np.array(decoded.box) - reference["pred_boxes"].reshape(4)).max() < TOLERANCE
    expected_score = 1.0 / (1.0 + np.exp(-float(reference["pred_scores"][0])))
    assert abs(decoded.score - expected_score) < TOLERANCE
    probabilities = box_logits.softmax(dim=-1)[0].numpy()
    for row, name in enumerate(("prob_l", "prob_t", "prob_r", "prob_b")):
        assert np.abs(probabilities[row] - reference[name][0]).max() < TOLERANCE
    for index, tokens in enumerate(joint["layer_tokens"]):
        tokens = tokens.numpy().copy()
        tokens[:, -4:] = tokens[:, -4:][:, [0, 2, 1, 3]]  # their prediction tokens: l, r, t, b
        assert relative_error(tokens, reference[f"distill_feat_list_{index}"]) < TOLERANCE


# -- the tracker around the network ---------------------------------------------------------


@pytest.mark.parametrize("model", ["hit_tiny", "mixformerv2_s", "hcat"])
def test_crops_and_box_mapping_reproduce_the_authors_tracker(converted, model):
    """Crop geometry from the first box, then the decoded box mapped back and clipped."""
    card = converted(model).card
    expected = fx.decoded(model)
    box = tuple(expected["init_bbox_xywh"])
    width, height = FRAME_SIZE
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    if card.crop_style == "stark":
        crop, region = reference_crops.stark_crop(frame, box, card.search_factor, card.search_size)
        assert region.side == expected["search_crop_side_px"]
        assert card.search_size / region.side == pytest.approx(expected["resize_factor"])
        mapped = clip_with_margin(
            region.box_to_image(*expected["box_crop_norm_cxcywh"]), width, height
        )
    else:
        crop, region = reference_crops.siamfc_crop(frame, box, card.search_factor, card.search_size)
        assert region.side == expected["s_x"]
        assert reference_crops.siamfc_side(box, card.template_factor) == expected["s_z"]
        mapped = clamp_centre(region.box_to_image(*expected["box_crop_norm_cxcywh"]), width, height)
    assert crop.shape == (card.search_size, card.search_size, 3)
    assert np.abs(np.array(mapped) - expected["tracker_target_bbox_xywh"]).max() < 1e-3


def test_converted_hcat_card_keeps_the_authors_runtime_settings_in_export(converted, tmp_path):
    from ros_tracker.export.onnx import export_onnx, find_export

    network = converted("hcat")
    export_onnx(network, str(tmp_path / "hcat"))
    card = find_export(str(tmp_path / "hcat")).card
    assert (card.window_influence, card.crop_style, card.reported_score) == (
        hcat_authors.WINDOW_INFLUENCE,
        "siamfc",
        "windowed",
    )
