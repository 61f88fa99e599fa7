"""How far converted weights are from the authors' outputs on the shared parity fixtures.

    python tools/parity_report.py [PARITY_DIR]

For HiT-Tiny (unfolded and BatchNorm-folded), HCAT (ResNet-18, N = 2) and MixFormerV2-S:
converts the fixture's state dict with ``ros-tracker convert``'s code, runs the network on
the authors' crops (fp32, CPU) and prints the largest absolute difference of each compared
quantity (decoded with the converted card, as the runtime decodes). PARITY_DIR defaults to
``$ROS_TRACKER_PARITY_DIR`` or ``shared/parity`` next to the checkout or a parent folder.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
from typing import Dict, Iterator, Tuple

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ros_tracker.runtime.decoders import make_decoder  # noqa: E402
from ros_tracker.runtime.model_files import resolve_model  # noqa: E402
from ros_tracker.zoo.authors.convert import convert_release  # noqa: E402
from ros_tracker.zoo.authors.fixtures import FOLDERS, parity_root  # noqa: E402
from ros_tracker.zoo.levit import fold_batchnorm  # noqa: E402


def find_root() -> str:
    root = parity_root()
    if root is None:
        raise SystemExit("parity fixtures not found: give PARITY_DIR or set ROS_TRACKER_PARITY_DIR")
    return root


def arrays(folder: str, name: str) -> Dict[str, np.ndarray]:
    with np.load(os.path.join(folder, name)) as data:
        return {k: data[k] for k in data.files}


def t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def hit(network, folder: str) -> Iterator[Tuple[str, float]]:
    inputs = arrays(folder, "inputs.npz")
    for label, net, reference in (
        ("unfolded", network, arrays(folder, "outputs_unfused.npz")),
        ("folded", fold_batchnorm(copy.deepcopy(network)), arrays(folder, "outputs.npz")),
    ):
        with torch.no_grad():
            (tokens,) = net.encode_template(t(inputs["template"]))
            stages = net.backbone(torch.cat([net.backbone.stem(t(inputs["search"])), tokens], 1))
            (logits,) = net.track_search(tokens, t(inputs["search"]))
        box = make_decoder(net.card)({"corner_logits": logits.numpy()}).box
        yield (
            f"{label} pred_boxes",
            float(np.abs(np.array(box) - reference["pred_boxes"].ravel()).max()),
        )
        stages = [s.numpy() for s in stages]
        stages[2] = np.concatenate([stages[2].mean(1, keepdims=True), stages[2]], 1)
        for index, tokens_out in enumerate(stages):
            diff = np.abs(tokens_out - reference[f"backbone_out_{index}"]).max()
            yield f"{label} backbone_out_{index}", float(diff)


def hcat(network, folder: str) -> Iterator[Tuple[str, float]]:
    inputs, reference = arrays(folder, "inputs.npz"), arrays(folder, "outputs.npz")
    decoded = json.load(open(os.path.join(folder, "outputs_decoded.json")))
    with torch.no_grad():
        features = network.backbone(t(inputs["z"]))
        state = network.encode_template(t(inputs["z"]))
        logits, boxes = network.track_search(*state, t(inputs["search"]))
    yield "zf_0", float(np.abs(features.numpy() - reference["zf_0"]).max())
    two_way = reference["pred_logits"][0].astype(np.float64)
    target = np.exp(two_way[:, 0]) / np.exp(two_way).sum(1)
    ours = 1.0 / (1.0 + np.exp(-logits.numpy()[0].astype(np.float64)))
    yield "target probability (softmax[..., 0])", float(np.abs(ours - target).max())
    yield "pred_boxes", float(np.abs(boxes.numpy() - reference["pred_boxes"]).max())
    result = make_decoder(network.card)({"cls_logits": logits.numpy(), "boxes": boxes.numpy()})
    yield "decoded box", float(np.abs(np.array(result.box) - decoded["box_crop_norm_cxcywh"]).max())
    yield "decoded score (window-blended)", abs(result.score - decoded["score"])


def mixformerv2(network, folder: str) -> Iterator[Tuple[str, float]]:
    inputs = {k: t(v) for k, v in arrays(folder, "inputs.npz").items()}
    reference = arrays(folder, "outputs.npz")
    with torch.no_grad():
        state = network.encode_template(inputs["template"], inputs["online_template"])
        box_logits, score = network.track_search(*state, inputs["search"])
    result = make_decoder(network.card)(
        {"box_logits": box_logits.numpy(), "score_logit": score.numpy()}
    )
    yield "pred_boxes", float(np.abs(np.array(result.box) - reference["pred_boxes"].ravel()).max())
    expected = 1.0 / (1.0 + np.exp(-float(reference["pred_scores"][0])))
    yield "score (sigmoid)", abs(result.score - expected)
    probabilities = box_logits.softmax(-1)[0].numpy()
    for row, name in enumerate(("prob_l", "prob_t", "prob_r", "prob_b")):
        yield name, float(np.abs(probabilities[row] - reference[name][0]).max())


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else find_root()
    with tempfile.TemporaryDirectory() as work:
        for model, compare in (("hit_tiny", hit), ("hcat", hcat), ("mixformerv2_s", mixformerv2)):
            folder = os.path.join(root, FOLDERS[model])
            out = os.path.join(work, model + ".safetensors")
            convert_release(model, os.path.join(folder, "state_dict.fp16.safetensors"), out)
            network = resolve_model(out).build_network()
            for name, difference in compare(network, folder):
                print(f"{FOLDERS[model]:14s} {name:40s} max |diff| {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
