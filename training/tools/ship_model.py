"""Ship a trained run into models/: its network's weights (safetensors, card in the metadata)
under the card's ``weights`` name, and the exported ONNX pair, checked against PyTorch.

    python training/tools/ship_model.py runs/hcat_mobilenetv2 [--which best|final]

The node and every command then find the trained weights by the zoo name; the ONNX folder
``models/<name>/`` can be given as the ``model`` parameter directly (no PyTorch needed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ros_tracker.export.onnx import export_onnx, verify_export  # noqa: E402
from ros_tracker.zoo.checkpoints import card_metadata, load_weights, save_weights  # noqa: E402
from ros_tracker.zoo.registry import create_model  # noqa: E402


def ship(run_dir: str, which: str, models_dir: str) -> None:
    with open(os.path.join(run_dir, which + ".json"), encoding="utf-8") as handle:
        rebuild = json.load(handle)
    network = create_model(rebuild["model"]).eval()
    if rebuild.get("overrides"):
        trained = create_model(rebuild["model"], **rebuild["overrides"])
        if trained.card.extra != network.card.extra:
            raise SystemExit(
                f"{run_dir}/{which}.json has builder overrides {rebuild['overrides']} that the "
                "zoo entry does not have: a shipped model must be the zoo entry itself"
            )
    load_weights(network, os.path.join(run_dir, which + ".safetensors"))
    card = network.card
    if not card.weights:
        raise SystemExit(f"the card of {card.name} names no weights file")
    metadata = card_metadata(card)
    metadata.update(
        training_run=os.path.basename(os.path.normpath(run_dir)),
        training_epoch=str(rebuild.get("epoch")),
        training_steps=str(rebuild.get("global_step")),
        validation=json.dumps(rebuild.get("best")),
    )
    weights_path = os.path.join(models_dir, card.weights)
    save_weights(network, weights_path, metadata)
    print(f"weights: {weights_path}")
    # The graphs name the weights file they come from: a zoo name uses them only while the
    # installed weights are exactly those (ros_tracker.runtime.model_files.installed_export).
    with open(weights_path, "rb") as handle:
        weights_sha256 = hashlib.sha256(handle.read()).hexdigest()
    export = export_onnx(
        network,
        os.path.join(models_dir, card.name),
        extra_metadata={"weights_sha256": weights_sha256},
    )
    report = verify_export(network, export)
    print(f"ONNX: {os.path.join(models_dir, card.name)} ({report})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--which", choices=("best", "final"), default="best")
    parser.add_argument("--models-dir", default=os.path.join(ROOT, "models"))
    args = parser.parse_args()
    ship(args.run_dir, args.which, args.models_dir)


if __name__ == "__main__":
    main()
