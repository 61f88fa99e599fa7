"""The real runtime tracker around the network reproduces the authors' first ``track()``.

test_parity checks the converted networks and, through helper functions, the decoding and box
mapping. Here the runtime path itself runs: ``Tracker.initialize`` / ``Tracker.track`` with the
card a converted release file carries (``resolve_model(...).card``, what ``build_tracker`` uses
with the default box policy), over an ``InferenceBackend`` stand-in that hands back the outputs
the authors' network produced (``outputs.npz``) and records what the tracker sends it. So
everything the tracker does around the network is compared with the authors' tracker: the crop
geometry it computes, the decoding with their window / coordinate conventions, the mapping back
into the image and their clipping, the reported score and (MixFormerV2) the online template.

What the fixtures allow, and what not:

* The frame (OTB-100 *Jogging* 0001.jpg) is not shipped, only its size (``frame_hw``) and the
  crops the authors cut from it. The tracker therefore runs on a synthetic frame of the recorded
  size (seeded noise, so that no image row or column of a crop is constant), and the crop
  *pixels* cannot be compared, only their geometry: the search / template sides, resize factor
  and centre the tracker crops with (its crop preprocessor is spied on), the crop shapes it
  sends, and the padding layout: which crop rows / columns are padding, compared line by line
  with the authors' crops, and the padding value. HCAT pads with the frame's channel mean; the
  synthetic frame gets the mean read off the authors' padded search columns, so the padding
  values compare too (colour order and normalisation included). The STARK crops of HiT and
  MixFormerV2 lie inside the frame here, so they have no padding on either side; their integer
  window origin (``round(cx - side/2)``) only shows in pixels and is not checked here.
* HiT's recorded outputs are the decoded ``pred_boxes``, not the corner maps the converted
  network returns (``corner_logits``). The stand-in returns corner logits built so that the
  authors' soft-argmax (coordinates ``index * stride / img_sz`` from the fixture's constants,
  i.e. cell corners) gives exactly the recorded corners; the card's decoder then has to read
  them with the same convention. (The converted network's own corner maps are compared in
  test_parity.) MixFormerV2's box logits are the logarithms of the recorded bin probabilities
  (``prob_l/t/r/b``); HCAT's one-logit classifier is the recorded two-way logit difference
  (``sigmoid(l0 - l1) = softmax(l)[0]``), its boxes the recorded ``pred_boxes``.

Tolerance: the boxes are compared within BOX_TOLERANCE_PX = 1e-4 px. The stand-in outputs are
float32 and the mapping multiplies crop-normalised values by the search side (at most 250 px
here): one float32 ulp of a value near 0.5 (6e-8) is 1.5e-5 px, and the log / renormalisation
round trip of MixFormerV2's probabilities and the float32 corner logits of HiT cost about one
ulp, so 1e-4 px leaves a few ulps of margin and is 10x tighter than 1e-3 px. Scores: 1e-6.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from ros_tracker.runtime.backends.base import InferenceBackend
from ros_tracker.runtime.crops import CropPreprocessor
from ros_tracker.runtime.model_files import resolve_model
from ros_tracker.runtime.tracker import Tracker
from ros_tracker.zoo.authors.convert import convert_release
from ros_tracker.zoo.card import ModelCard

from . import parity_fixtures as fx
from .release_files import write_release
from .test_parity import TRAINERS

BOX_TOLERANCE_PX = 1e-4
SCORE_TOLERANCE = 1e-6
PAD_TOLERANCE = 1e-5  # normalised units (1e-5 * 0.229 * 255 = 6e-4 grey levels)
MODELS = ("hit_tiny", "hcat", "mixformerv2_s")
# card input name -> the fixture's inputs.npz name
FIXTURE_INPUTS = {
    "hit_tiny": {"template": "template", "search": "search"},
    "hcat": {"template": "z", "search": "search"},
    "mixformerv2_s": {
        "template": "template",
        "online_template": "online_template",
        "search": "search",
    },
}
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def converted_card(tmp_path_factory):
    """model -> the card of its converted weights file, as the runtime resolves it."""
    cache: Dict[str, ModelCard] = {}

    def get(model: str) -> ModelCard:
        if model not in cache:
            folder = tmp_path_factory.mktemp(model)
            release = write_release(
                str(folder / "release.pth.tar"), fx.authors_state(model), TRAINERS[model]
            )
            result = convert_release(model, release, str(folder / f"{model}.safetensors"))
            card = resolve_model(result.out).card
            assert card == result.card
            cache[model] = card
        return cache[model]

    return get


class RecordedOutputs(InferenceBackend):
    """Returns fixed network outputs and records every template and search input."""

    name = "recorded-outputs"

    def __init__(self, card: ModelCard, outputs: Dict[str, np.ndarray]) -> None:
        super().__init__(card)
        self.outputs = outputs
        self.templates: List[Dict[str, np.ndarray]] = []
        self.searches: List[np.ndarray] = []

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        self.templates.append({k: np.array(v, copy=True) for k, v in templates.items()})

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        self.searches.append(np.array(search, copy=True))
        return {k: v.copy() for k, v in self.outputs.items()}


# -- the authors' outputs in the card's output layout ---------------------------------------


def _softmax(logits: np.ndarray) -> np.ndarray:
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def tilted_logits(target: float, positions: np.ndarray) -> np.ndarray:
    """Logits ``theta * positions`` whose softmax expectation over ``positions`` is ``target``."""
    low, high = -1e3, 1e3  # the expectation rises monotonically with theta
    for _ in range(200):
        theta = 0.5 * (low + high)
        if _softmax(theta * positions) @ positions < target:
            low = theta
        else:
            high = theta
    return 0.5 * (low + high) * positions


def hit_corner_logits(box: Sequence[float], positions: np.ndarray) -> np.ndarray:
    """(1, 2, H, W) corner maps (top-left, bottom-right) for a (cx, cy, w, h) box."""
    cx, cy, w, h = (float(v) for v in box)
    maps = []
    for x, y in ((cx - 0.5 * w, cy - 0.5 * h), (cx + 0.5 * w, cy + 0.5 * h)):
        maps.append(tilted_logits(y, positions)[:, None] + tilted_logits(x, positions)[None, :])
    return np.stack(maps)[None].astype(np.float32)


def recorded_outputs(model: str, card: ModelCard) -> Dict[str, np.ndarray]:
    """The authors' outputs.npz, rewritten into the outputs the card's network returns."""
    theirs = fx.arrays(model, "outputs.npz")
    if card.family == "hcat":
        assert card.output_names[:2] == ("cls_logits", "boxes")
        two_way = theirs["pred_logits"].astype(np.float64)  # (1, 256, 2), class 0 = target
        logit = (two_way[..., 0] - two_way[..., 1]).astype(np.float32)
        return {"cls_logits": logit, "boxes": theirs["pred_boxes"]}
    if card.family == "mixformerv2":
        assert card.output_names[:2] == ("box_logits", "score_logit")
        probabilities = np.stack([theirs[f"prob_{s}"][0] for s in "ltrb"])  # x1, y1, x2, y2
        return {
            "box_logits": np.log(probabilities.astype(np.float64)).astype(np.float32)[None],
            "score_logit": theirs["pred_scores"].reshape(1, 1).astype(np.float32),
        }
    assert card.family == "hit" and card.output_names == ("corner_logits",)
    constants = fx.decoded(model)["constants"]
    cells = constants["corner_head_feat_sz"]
    positions = np.arange(cells) * constants["corner_head_stride"] / constants["corner_head_img_sz"]
    box = theirs["pred_boxes"].reshape(4).astype(np.float64)
    logits = hit_corner_logits(box, positions)
    # The construction itself: the authors' soft-argmax of these maps gives their corners.
    probabilities = [
        _softmax(m.astype(np.float64).reshape(-1)).reshape(cells, cells) for m in logits[0]
    ]
    corners = [(p.sum(axis=0) @ positions, p.sum(axis=1) @ positions) for p in probabilities]
    (x1, y1), (x2, y2) = corners
    rebuilt = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    assert np.abs(rebuilt - box).max() < 1e-7
    return {"corner_logits": logits}


# -- frames and crops -----------------------------------------------------------------------


def padding_lines(crop: np.ndarray) -> Tuple[List[int], List[int], Optional[np.ndarray]]:
    """Rows and columns of a (1, 3, S, S) crop whose pixels are all one colour, and that colour.

    Neither a resized real image nor resized noise has a constant line: those are padding.
    """
    planes = crop[0].astype(np.float64)
    rows = [r for r in range(planes.shape[1]) if np.ptp(planes[:, r, :], axis=1).max() == 0.0]
    cols = [c for c in range(planes.shape[2]) if np.ptp(planes[:, :, c], axis=1).max() == 0.0]
    if cols:
        return rows, cols, planes[:, 0, cols[0]]
    if rows:
        return rows, cols, planes[:, rows[0], 0]
    return rows, cols, None


def synthetic_frame(width: int, height: int, mean_rgb: Optional[Sequence[float]]) -> np.ndarray:
    """Seeded uint8 BGR noise; with ``mean_rgb``, its channel means are those values (to 1/N)."""
    rng = np.random.default_rng(20240601)
    count = width * height
    channels = []
    for target in mean_rgb[::-1] if mean_rgb is not None else (128.0, 128.0, 128.0):
        values = int(round(target)) + rng.integers(-50, 51, size=count)
        wanted = int(round(target * count))
        while values.sum() != wanted:
            missing = wanted - int(values.sum())
            chosen = rng.choice(count, size=min(abs(missing), count), replace=False)
            values[chosen] += 1 if missing > 0 else -1
        assert values.min() >= 0 and values.max() <= 255
        channels.append(values.reshape(height, width))
    return np.ascontiguousarray(np.stack(channels, axis=-1).astype(np.uint8))


def pad_colour_rgb(crop: np.ndarray) -> Optional[np.ndarray]:
    """The padding colour of a normalised crop in 0..255 RGB (None without padding)."""
    _, _, colour = padding_lines(crop)
    return None if colour is None else (colour * STD + MEAN) * 255.0


def assert_same_padding(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    our_rows, our_cols, our_colour = padding_lines(ours)
    their_rows, their_cols, their_colour = padding_lines(theirs)
    assert (our_rows, our_cols) == (their_rows, their_cols), f"{what}: padded rows / columns"
    if their_colour is not None:
        assert np.abs(our_colour - their_colour).max() < PAD_TOLERANCE, f"{what}: padding value"


# -- the test -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_tracker_reproduces_the_authors_first_track(converted_card, model, monkeypatch):
    card = converted_card(model)
    expected = fx.decoded(model)
    constants = expected["constants"]
    inputs = fx.arrays(model, "inputs.npz")
    names = FIXTURE_INPUTS[model]
    height, width = expected["frame_hw"]
    init_box = tuple(float(v) for v in expected["init_bbox_xywh"])
    cx, cy = init_box[0] + 0.5 * init_box[2], init_box[1] + 0.5 * init_box[3]

    crops = []  # (factor, output size, box, region) of every crop the tracker cuts
    original = CropPreprocessor.__call__

    def spy(self, image, box):
        tensor, region = original(self, image, box)
        crops.append((self.factor, self.output_size, tuple(box), region))
        return tensor, region

    monkeypatch.setattr(CropPreprocessor, "__call__", spy)

    fill = pad_colour_rgb(inputs["search"]) if card.crop_style == "siamfc" else None
    frame = synthetic_frame(width, height, fill)
    backend = RecordedOutputs(card, recorded_outputs(model, card))
    tracker = Tracker(card, backend)
    tracker.initialize(frame, init_box)
    result = tracker.track(frame)

    # Crop geometry: template at init, then the search region around the initial box.
    assert len(crops) == 2
    (t_factor, t_size, t_box, t_region), (s_factor, s_size, s_box, s_region) = crops
    assert t_box == s_box == init_box
    if card.crop_style == "siamfc":
        assert (t_factor, t_size) == (constants["template_area_factor"], constants["exemplar_size"])
        assert (s_factor, s_size) == (constants["search_area_factor"], constants["instance_size"])
        assert (t_region.side, s_region.side) == (expected["s_z"], expected["s_x"])
    else:
        assert card.crop_style == "stark"
        assert (t_factor, t_size) == (constants["template_factor"], constants["template_size"])
        assert (s_factor, s_size) == (constants["search_factor"], constants["search_size"])
        assert s_region.side == expected["search_crop_side_px"]
        assert s_size / s_region.side == pytest.approx(expected["resize_factor"], rel=1e-12)
    # Their boxes map back around the previous (float) centre.
    for region in (t_region, s_region):
        assert region.x0 + 0.5 * region.side == pytest.approx(cx, abs=1e-12)
        assert region.y0 + 0.5 * region.side == pytest.approx(cy, abs=1e-12)

    # What the backend received: the authors' tensor names, shapes, dtype and padding layout.
    assert len(backend.templates) == 1 and len(backend.searches) == 1
    (templates,) = backend.templates
    assert tuple(templates) == card.template_input_names
    for name, crop in list(templates.items()) + [("search", backend.searches[0])]:
        theirs = inputs[names[name]]
        assert crop.dtype == np.float32 and crop.shape == theirs.shape, name
        assert_same_padding(crop, theirs, f"{model} {name}")
    if "online_template" in templates:  # their initialize(): online_template = template
        assert np.array_equal(inputs["online_template"], inputs["template"])
        assert np.array_equal(templates["online_template"], templates["template"])

    # Decoding, mapping back and clipping: the box their track() returned.
    error = np.abs(np.array(result.box) - expected["tracker_target_bbox_xywh"]).max()
    assert error < BOX_TOLERANCE_PX, (result.box, expected["tracker_target_bbox_xywh"], error)
    assert np.abs(np.array(tracker.box) - expected["tracker_target_bbox_xywh"]).max() < (
        BOX_TOLERANCE_PX
    )
    if expected["score"] is None:  # HiT: their tracker has no score
        assert 0.0 <= result.score <= 1.0
    else:
        assert abs(result.score - expected["score"]) < SCORE_TOLERANCE
    assert not result.searching
    if card.online_template:  # score below 0.5: no candidate, and no swap due at frame 1
        assert expected["score"] <= constants["online_update_score_threshold"]
        assert tracker.online_template_swaps == 0
        assert (card.template_update_interval, card.template_update_threshold) == (
            constants["update_interval"],
            constants["online_update_score_threshold"],
        )
    print(f"{model}: box {result.box}, max |error| {error:.2e} px, score {result.score:.9f}")
