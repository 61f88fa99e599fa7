"""Decoding conventions a card selects: where a cell's coordinate sits, which score HCAT's
windowed pick reports (the authors' weights use the other choice than this project's)."""

from __future__ import annotations

import numpy as np
import pytest

from ros_tracker.runtime.decoders import hann_window, make_decoder
from ros_tracker.zoo.card import ModelCard

BIG = 50.0  # a logit large enough to make a softmax one-hot


def card(family: str, output_names, **fields) -> ModelCard:
    return ModelCard(
        name="test_" + family,
        family=family,
        paper="",
        backbone="",
        template_size=32,
        search_size=64,
        template_factor=2.0,
        search_factor=4.0,
        head="",
        output_names=tuple(output_names),
        **fields,
    )


@pytest.mark.parametrize("offset", [0.5, 0.0])
def test_corner_cells_are_read_at_the_cards_offset(offset):
    logits = np.zeros((1, 2, 16, 16))
    logits[0, 0, 3, 5] = BIG  # top-left corner in row 3, column 5
    logits[0, 1, 12, 9] = BIG
    decoded = make_decoder(card("hit", ["corner_logits"], coordinate_offset=offset))(
        {"corner_logits": logits}
    )
    x1, y1, x2, y2 = (5 + offset) / 16, (3 + offset) / 16, (9 + offset) / 16, (12 + offset) / 16
    assert decoded.box == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))


@pytest.mark.parametrize("offset", [0.5, 0.0])
def test_box_side_bins_are_read_at_the_cards_offset(offset):
    bins = 96
    logits = np.zeros((1, 4, bins))
    for row, index in enumerate((10, 20, 70, 80)):  # x1, y1, x2, y2
        logits[0, row, index] = BIG
    decoder = make_decoder(
        card("mixformerv2", ["box_logits", "score_logit"], coordinate_offset=offset)
    )
    decoded = decoder({"box_logits": logits, "score_logit": np.zeros((1, 1))})
    x1, y1, x2, y2 = ((i + offset) / bins for i in (10, 20, 70, 80))
    assert decoded.box == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
    assert decoded.score == pytest.approx(0.5)


def test_hcat_reports_the_raw_or_the_window_blended_score():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 256))
    boxes = rng.uniform(0.2, 0.8, size=(1, 256, 4))
    scores = 1.0 / (1.0 + np.exp(-logits[0]))
    blended = scores * (1 - 0.42) + hann_window(16, 16, zero_edges=True).reshape(-1) * 0.42
    best = int(np.argmax(blended))
    outputs = {"cls_logits": logits, "boxes": boxes}
    for reported, expected in (("raw", scores[best]), ("windowed", blended[best])):
        hcat = card(
            "hcat",
            ["cls_logits", "boxes"],
            hann_window=True,
            window_influence=0.42,
            reported_score=reported,
        )
        decoded = make_decoder(hcat)(outputs)
        assert decoded.box == pytest.approx(tuple(boxes[0, best]))
        assert decoded.score == pytest.approx(expected)
