"""Every registered zoo model exports, checks, and runs the same in ONNX Runtime as in torch.

Tiny configurations keep this fast; one full-size model is exported as well. Each network is
exported once per module and shared by the tests below: the graph checks, the raw outputs on
random inputs, and tracking through a sequence of real photographs (the synthetic scene moves
a photographed target over a photographed background), where both backends must give the
same boxes within half a pixel.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from ros_tracker.export.onnx import (
    export_onnx,
    graph_opset,
    list_inputs,
    op_counts,
    read_card,
    state_names,
    verify_export,
)
from ros_tracker.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from ros_tracker.runtime.backends.torch_backend import TorchBackend
from ros_tracker.runtime.crops import CropPreprocessor
from ros_tracker.runtime.tracker import Tracker
from ros_tracker.sources.synthetic import SyntheticScene
from ros_tracker.zoo.registry import create_model, get_card, list_models

from .zoo_configs import tiny_overrides

FULL_SIZE_MODEL = "abtrack_vit_tiny"
TRACKED_FRAMES = 15
MAX_BOX_DIFFERENCE_PX = 0.5
MAX_SCORE_DIFFERENCE = 1e-3
CALIBRATION_FRAMES = 4


def _tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **tiny_overrides(get_card(name).family)).eval()


def _informative_random_init(network: nn.Module, frames) -> None:
    """Seeded random weights under which the network's output follows the image.

    A fresh initialisation leaves an untrained tracker's output almost independent of the
    image, and a tracking comparison would then say little: transformer Linear layers are
    drawn with std 0.02 (the ViT convention), and BatchNorms assume zero-mean unit-variance
    input (far from an untrained network's activations), some with a zero scale (LeViT's
    residual branches). Here Linear weights are redrawn with variance 1 / fan_in, and every
    BatchNorm gets unit scale and the statistics of its input on real crops, as training
    would give it.
    """
    generator = torch.Generator().manual_seed(0)
    card = network.card
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Linear):
                weight = torch.randn(module.weight.shape, generator=generator)
                module.weight.copy_(weight / module.in_features**0.5)
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the calibration passes
            norm.weight.fill_(1.0)
            norm.bias.zero_()
            norm.train()
        if norms:
            template_crop = CropPreprocessor(
                card.template_size, card.template_factor, card.mean, card.std
            )
            search_crop = CropPreprocessor(
                card.search_size, card.search_factor, card.mean, card.std
            )
            for frame in frames[:CALIBRATION_FRAMES]:
                template = torch.from_numpy(template_crop(frame.image, frame.box)[0].copy())
                search = torch.from_numpy(search_crop(frame.image, frame.box)[0].copy())
                inputs = [template] * len(card.template_input_names)
                if card.template_box_input:  # the box in the crop, as the tracker sends it
                    corners = template_crop.region(frame.box).corners_to_crop(frame.box)
                    inputs.append(torch.tensor([corners], dtype=torch.float32))
                state = network.encode_template(*inputs)
                network.track_search(*state, search)
    network.eval()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(network, export) per model, built on first use and shared by this module.

    Seeded random initialisation; ``informative`` redraws it (_informative_random_init) for
    the tracking comparisons. The graph and raw-output checks keep the plain one: on random
    noise inputs an informative tiny HiT's logits reach 1e5, beyond any absolute tolerance.
    """
    cache = {}
    frames = _real_image_frames()

    def get(name: str, full_size: bool = False, informative: bool = False):
        key = (name, full_size, informative)
        if key not in cache:
            if full_size:
                torch.manual_seed(0)
                network = create_model(name).eval()
            else:
                network = _tiny(name)
            if informative:
                _informative_random_init(network, frames)
            folder = tmp_path_factory.mktemp(f"{name}-{int(full_size)}{int(informative)}")
            cache[key] = (network, export_onnx(network, str(folder)))
        return cache[key]

    return get


def _real_image_frames():
    scene = SyntheticScene(width=640, height=480, frames=TRACKED_FRAMES, seed=0)
    return [scene.render(index) for index in range(TRACKED_FRAMES)]


@pytest.fixture(scope="module")
def real_image_frames():
    return _real_image_frames()


def _check_export(network: nn.Module, export):
    card = network.card
    for path in (export.template_path, export.search_path):
        onnx.checker.check_model(path)
        assert graph_opset(path) >= 17
        assert read_card(path) == card
    assert list_inputs(export.template_path) == list(card.template_inputs)
    assert list_inputs(export.search_path) == list(state_names(card)) + ["search"]
    outputs = [o.name for o in onnx.load(export.search_path).graph.output]
    assert outputs == list(card.output_names)
    has_layer_norm = any(isinstance(m, nn.LayerNorm) for m in network.modules())
    if has_layer_norm:
        assert op_counts(export.search_path).get("LayerNormalization", 0) > 0
    report = verify_export(network, export, trials=1)
    assert report.max_abs_error <= 1e-4, report.summary()


def _track_both(network: nn.Module, export, frames, follow_torch: bool):
    """Boxes and scores of the PyTorch and the ONNX Runtime tracker over ``frames``.

    With ``follow_torch`` the ONNX Runtime tracker starts every frame from the PyTorch
    tracker's box, so each frame's difference is the backends' alone. An untrained network's
    box can wander chaotically (it may grow by a factor every frame), and left to run on
    their own two trackers would then drift apart from differences of 1e-6 in the raw
    outputs: that would measure the random network's dynamics, not the backends.
    """
    card = network.card
    reference = Tracker(card, TorchBackend(card, network, device="cpu"))
    candidate = Tracker(card, OnnxRuntimeBackend(card, export, device="cpu", threads=1))
    for tracker in (reference, candidate):
        tracker.initialize(frames[0].image, frames[0].box)
    boxes, scores = [], []
    for frame in frames[1:]:
        if follow_torch:
            candidate._box = reference.box
        expected, actual = reference.track(frame.image), candidate.track(frame.image)
        boxes.append((expected.box, actual.box))
        scores.append((expected.score, actual.score))
    reference.close()
    candidate.close()
    return np.asarray(boxes), np.asarray(scores)


def _assert_tracks_alike(boxes: np.ndarray, scores: np.ndarray) -> None:
    box_difference = np.abs(boxes[:, 0] - boxes[:, 1]).max(axis=1)  # per frame, in pixels
    worst = int(np.argmax(box_difference))
    assert box_difference[worst] <= MAX_BOX_DIFFERENCE_PX, (
        f"frame {worst + 1}: PyTorch {boxes[worst, 0]} vs ONNX Runtime {boxes[worst, 1]}"
    )
    np.testing.assert_allclose(scores[:, 1], scores[:, 0], atol=MAX_SCORE_DIFFERENCE, rtol=0)
    # Not a vacuous comparison: the network's output follows the images (the box moves).
    centres = boxes[:, 0, :2] + boxes[:, 0, 2:] / 2
    assert centres.std(axis=0).max() > 2.0, "the box never moved: outputs ignore the input"


@pytest.mark.parametrize("name", list_models())
def test_tiny_zoo_model_exports_and_matches_pytorch(name, exports):
    _check_export(*exports(name))


@pytest.mark.parametrize("name", list_models())
def test_onnxruntime_backend_equals_torch_backend(name, exports):
    network, export = exports(name)
    card = network.card
    ort_backend = OnnxRuntimeBackend(card, export, device="cpu", threads=1)
    torch_backend = TorchBackend(card, network, device="cpu")
    rng = np.random.default_rng(1)
    templates = {
        n: rng.standard_normal((1, 3, card.template_size, card.template_size), np.float32)
        for n in card.template_input_names
    }
    if card.template_box_input:  # the target box in template-crop units
        templates[card.template_box_input] = np.array([[0.3, 0.25, 0.6, 0.8]], np.float32)
    ort_backend.set_template(templates)
    torch_backend.set_template(templates)
    for _ in range(2):
        search = rng.standard_normal((1, 3, card.search_size, card.search_size), np.float32)
        expected = torch_backend.run_search(search)
        actual = ort_backend.run_search(search)
        for output in card.output_names:
            np.testing.assert_allclose(actual[output], expected[output], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list_models())
def test_tiny_zoo_model_tracks_alike_in_both_backends(name, exports, real_image_frames):
    network, export = exports(name, informative=True)
    _assert_tracks_alike(*_track_both(network, export, real_image_frames, follow_torch=True))


def test_full_size_model_exports_and_matches_pytorch(exports):
    network, export = exports(FULL_SIZE_MODEL, full_size=True, informative=True)
    assert network.card == get_card(FULL_SIZE_MODEL)
    _check_export(network, export)


def test_full_size_model_tracks_alike_in_both_backends(exports, real_image_frames):
    """The full-size model, each tracker on its own from the first box (as on a robot): the
    boxes stay together. An untrained network's confidence is no smooth function of the crop
    (a 0.08 px shift of the box moved it by 2e-3 here), so the confidences are compared
    frame by frame from the same box, where the difference is the backends' alone."""
    network, export = exports(FULL_SIZE_MODEL, full_size=True, informative=True)
    assert export.stages is not None  # ONNX Runtime runs ABTrack's per-block graphs
    free_boxes, _ = _track_both(network, export, real_image_frames, follow_torch=False)
    _, same_box_scores = _track_both(network, export, real_image_frames, follow_torch=True)
    _assert_tracks_alike(free_boxes, same_box_scores)
