"""Golden outputs of the per-family decoders on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from ros_tracker.runtime.decoders import (
    CenterDecoder,
    CornerDecoder,
    Decoded,
    DistributionDecoder,
    WindowedClassificationDecoder,
    corner_peakedness,
    hann_window,
    make_decoder,
)
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


HIT = card("hit", ["corner_logits"])
HCAT = card("hcat", ["cls_logits", "boxes"], hann_window=True, window_influence=0.49)
MIXFORMER = card("mixformerv2", ["box_logits", "score_logit"])
ABTRACK = card("abtrack", ["score_map", "offset_map", "size_map"], hann_window=True)


def approx_box(decoded: Decoded, expected, abs=1e-6) -> None:
    assert decoded.box == pytest.approx(expected, abs=abs)


def test_make_decoder_by_family() -> None:
    assert isinstance(make_decoder(HIT), CornerDecoder)
    assert isinstance(make_decoder(HCAT), WindowedClassificationDecoder)
    assert isinstance(make_decoder(MIXFORMER), DistributionDecoder)
    assert isinstance(make_decoder(ABTRACK), CenterDecoder)
    with pytest.raises(KeyError, match="no decoder"):
        make_decoder(card("siamfc", ["x"]))


def test_hann_windows() -> None:
    np.testing.assert_allclose(hann_window(1, 4, zero_edges=True)[0], [0.0, 0.75, 0.75, 0.0])
    edges = hann_window(1, 4, zero_edges=False)[0]
    np.testing.assert_allclose(edges, [0.345492, 0.904508, 0.904508, 0.345492], atol=1e-6)
    assert hann_window(5, 5, zero_edges=False)[2, 2] == pytest.approx(1.0)


# -- HiT --------------------------------------------------------------------------------


def corner_maps(top_left, bottom_right, size: int = 4) -> np.ndarray:
    maps = np.zeros((1, 2, size, size), dtype=np.float32)
    maps[0, 0][top_left] = BIG
    maps[0, 1][bottom_right] = BIG
    return maps


def test_hit_one_hot_corners() -> None:
    # Top-left at (row 1, col 0), bottom-right at (row 3, col 2) of a 4x4 grid.
    decoded = CornerDecoder(HIT)({"corner_logits": corner_maps((1, 0), (3, 2))})
    # x1 = 0.5/4, y1 = 1.5/4, x2 = 2.5/4, y2 = 3.5/4
    approx_box(decoded, (0.375, 0.625, 0.5, 0.5))
    assert decoded.score == pytest.approx(1.0)


def test_hit_expectation_between_two_peaks_and_its_lower_confidence() -> None:
    maps = corner_maps((0, 0), (3, 3))
    maps[0, 0, 0, 2] = BIG  # second equally strong top-left peak
    decoded = CornerDecoder(HIT)({"corner_logits": maps})
    x1 = (0.125 + 0.625) / 2
    approx_box(decoded, ((x1 + 0.875) / 2, 0.5, 0.875 - x1, 0.75))
    # var_x = 0.0625; a uniform 4x4 map has 2 * (1 - 1/16) / 12 = 0.15625
    assert decoded.score == pytest.approx(1.0 - np.sqrt(0.0625 / 0.15625), abs=1e-6)


def test_hit_flat_maps_give_zero_confidence_and_centred_box() -> None:
    decoded = CornerDecoder(HIT)({"corner_logits": np.zeros((1, 2, 16, 16), np.float32)})
    approx_box(decoded, (0.5, 0.5, 0.0, 0.0))
    assert decoded.score == pytest.approx(0.0, abs=1e-9)


def test_corner_peakedness_is_monotonic_in_concentration() -> None:
    ys, xs = np.mgrid[0:16, 0:16]
    values = []
    for sigma in (0.3, 1.0, 2.0, 4.0, 100.0):
        blob = np.exp(-((xs - 7) ** 2 + (ys - 9) ** 2) / (2 * sigma**2))
        values.append(corner_peakedness(blob / blob.sum()))
    assert values == sorted(values, reverse=True)
    assert values[0] > 0.9 and values[-1] < 0.01


# -- HCAT -------------------------------------------------------------------------------


def hcat_outputs(logits: dict) -> dict:
    cls = np.full((1, 16), -10.0, dtype=np.float32)
    for cell, value in logits.items():
        cls[0, cell] = value
    boxes = np.zeros((1, 16, 4), dtype=np.float32)
    for cell in range(16):
        boxes[0, cell] = (cell / 16.0, 0.5, 0.1 + cell / 100.0, 0.2)
    return {"cls_logits": cls, "boxes": boxes}


def test_hcat_window_moves_choice_to_the_centre_and_reports_raw_score() -> None:
    # Corner cell 0 has the best raw score (sigmoid(5) = 0.9933) but a window weight of 0;
    # cell 5 (row 1, col 1): 0.7311 * 0.51 + 0.5625 * 0.49 = 0.648 > 0.9933 * 0.51 = 0.507.
    outputs = hcat_outputs({0: 5.0, 5: 1.0})
    decoded = WindowedClassificationDecoder(HCAT)(outputs)
    approx_box(decoded, (5 / 16.0, 0.5, 0.15, 0.2))
    assert decoded.score == pytest.approx(1.0 / (1.0 + np.exp(-1.0)))


def test_hcat_without_window_takes_the_raw_maximum() -> None:
    no_window = HCAT.replace(window_influence=0.0)
    decoded = WindowedClassificationDecoder(no_window)(hcat_outputs({0: 5.0, 5: 1.0}))
    approx_box(decoded, (0.0, 0.5, 0.1, 0.2))
    assert decoded.score == pytest.approx(1.0 / (1.0 + np.exp(-5.0)))


def test_hcat_rejects_non_square_grid() -> None:
    outputs = {"cls_logits": np.zeros((1, 12)), "boxes": np.zeros((1, 12, 4))}
    with pytest.raises(ValueError, match="square"):
        WindowedClassificationDecoder(HCAT)(outputs)


# -- MixFormerV2 ------------------------------------------------------------------------


def test_mixformer_expectation_over_bins_and_score() -> None:
    logits = np.zeros((1, 4, 4), dtype=np.float32)
    logits[0, 0, 1] = BIG  # x1 -> 1.5 / 4
    logits[0, 1, 0] = BIG  # y1 -> 0.5 / 4
    logits[0, 2, 3] = BIG  # x2 -> 3.5 / 4
    # y2: two equal peaks at bins 2 and 3 -> (2.5 + 3.5) / 8
    logits[0, 3, 2] = logits[0, 3, 3] = BIG
    decoded = DistributionDecoder(MIXFORMER)(
        {"box_logits": logits, "score_logit": np.array([[2.0]], dtype=np.float32)}
    )
    x1, y1, x2, y2 = 0.375, 0.125, 0.875, 0.75
    approx_box(decoded, ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
    assert decoded.score == pytest.approx(1.0 / (1.0 + np.exp(-2.0)))


def test_mixformer_uniform_bins_give_the_crop_centre() -> None:
    decoded = DistributionDecoder(MIXFORMER)(
        {"box_logits": np.zeros((1, 4, 96)), "score_logit": np.array([[-800.0]])}
    )
    approx_box(decoded, (0.5, 0.5, 0.0, 0.0))
    assert decoded.score == pytest.approx(0.0)  # no overflow for extreme logits


# -- ABTrack ----------------------------------------------------------------------------


def abtrack_outputs(score_logits: dict) -> dict:
    scores = np.full((1, 1, 4, 4), -10.0, dtype=np.float32)
    for cell, value in score_logits.items():
        scores[0, 0][cell] = value
    offsets = np.zeros((1, 2, 4, 4), dtype=np.float32)
    sizes = np.zeros((1, 2, 4, 4), dtype=np.float32)
    offsets[0, :, 2, 1] = (0.25, 0.75)
    sizes[0, :, 2, 1] = (0.2, 0.3)
    offsets[0, :, 0, 0] = (0.5, 0.5)
    sizes[0, :, 0, 0] = (0.4, 0.4)
    return {"score_map": scores, "offset_map": offsets, "size_map": sizes}


def test_abtrack_windowed_peak_with_offset_and_size() -> None:
    # (0, 0): sigmoid(3) * 0.3455^2 = 0.114; (2, 1): 0.5 * 0.9045^2 = 0.409 -> (row 2, col 1)
    decoded = CenterDecoder(ABTRACK)(abtrack_outputs({(0, 0): 3.0, (2, 1): 0.0}))
    approx_box(decoded, ((1 + 0.25) / 4, (2 + 0.75) / 4, 0.2, 0.3))
    assert decoded.score == pytest.approx(0.5)


def test_abtrack_without_window_takes_the_raw_peak() -> None:
    decoded = CenterDecoder(ABTRACK.replace(hann_window=False))(
        abtrack_outputs({(0, 0): 3.0, (2, 1): 0.0})
    )
    approx_box(decoded, (0.5 / 4, 0.5 / 4, 0.4, 0.4))
    assert decoded.score == pytest.approx(1.0 / (1.0 + np.exp(-3.0)))


# -- confidence: peaked maps beat flat ones, for every family ---------------------------


def gaussian_logits(size: int, row: float, col: float, sigma: float, gain: float) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size]
    return gain * np.exp(-((xs - col) ** 2 + (ys - row) ** 2) / (2 * sigma**2))


def peaked_and_flat_outputs(family: str):
    """(peaked, flat) raw outputs of one family on a 16x16 grid (target at row 6, col 9)."""
    peak = gaussian_logits(16, 6, 9, sigma=1.0, gain=8.0) - 4.0
    flat = np.full((16, 16), -1.0)
    if family == "hit":
        return (
            {"corner_logits": np.stack([peak, peak])[None]},
            {"corner_logits": np.stack([flat, flat])[None]},
        )
    if family == "hcat":
        boxes = np.full((1, 256, 4), 0.3)
        return (
            {"cls_logits": peak.reshape(1, -1), "boxes": boxes},
            {"cls_logits": flat.reshape(1, -1), "boxes": boxes},
        )
    if family == "abtrack":
        offsets = np.full((1, 2, 16, 16), 0.5)
        sizes = np.full((1, 2, 16, 16), 0.2)
        return (
            {"score_map": peak[None, None], "offset_map": offsets, "size_map": sizes},
            {"score_map": flat[None, None], "offset_map": offsets, "size_map": sizes},
        )
    # MixFormerV2's confidence comes from its score token, whatever the box distribution.
    bins = np.zeros((1, 4, 32))
    return (
        {"box_logits": bins, "score_logit": np.array([[3.0]])},
        {"box_logits": bins, "score_logit": np.array([[-1.0]])},
    )


@pytest.mark.parametrize("decoder_card", [HIT, HCAT, MIXFORMER, ABTRACK], ids=lambda c: c.family)
def test_confidence_higher_for_peaked_than_flat(decoder_card: ModelCard) -> None:
    decode = make_decoder(decoder_card)
    peaked, flat = peaked_and_flat_outputs(decoder_card.family)
    high, low = decode(peaked).score, decode(flat).score
    assert 0.0 <= low < high <= 1.0
    assert high - low > 0.3


# -- conventions a card selects (the authors' weights use the other choice) -------------


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
