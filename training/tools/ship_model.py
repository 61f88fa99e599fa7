"""Ship a trained run into models/: its network's weights (safetensors, card in the metadata)
under the card's ``weights`` name, and the exported ONNX pair, checked against PyTorch.

    python training/tools/ship_model.py runs/hcat_mobilenetv2 [--which best|final]
    python training/tools/ship_model.py --card-only hcat_mobilenetv2

``--card-only NAME`` writes the zoo's current card of a shipped model into its weights file
and ONNX pair, tensors and graphs untouched: for runtime settings (the box and confidence
policy) measured after the network shipped, so that a machine without PyTorch, which reads
the card from the graphs, runs them too. Fields that shape the graphs must not have changed.

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
from ros_tracker.runtime.model_files import GRAPH_FIELDS  # noqa: E402
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


def write_card(name: str, models_dir: str) -> None:
    """The zoo's card of ``name`` into models_dir's weights file and ONNX pair (see above)."""
    import onnx
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from ros_tracker.export.metadata import CARD_KEY, GRAPH_KEY, card_to_json, export_metadata
    from ros_tracker.export.onnx_files import WEIGHTS_SHA256_KEY, read_card
    from ros_tracker.zoo.registry import get_card

    card = get_card(name)
    weights_path = os.path.join(models_dir, card.weights)
    folder = os.path.join(models_dir, card.name)
    graphs = [os.path.join(folder, f) for f in ("template.onnx", "search.onnx")]
    for path in graphs:
        graph = os.path.splitext(os.path.basename(path))[0]
        shipped_card = read_card(path)
        shipped = export_metadata(shipped_card, graph)
        wanted = export_metadata(card, graph)
        changed = [k for k in wanted if k not in (CARD_KEY, GRAPH_KEY) and shipped[k] != wanted[k]]
        changed += [f for f in GRAPH_FIELDS if getattr(shipped_card, f) != getattr(card, f)]
        if changed:
            raise SystemExit(f"{path}: {', '.join(changed)} changed: re-export, not --card-only")
    with safe_open(weights_path, "np") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    metadata.update(card_metadata(card))
    save_file(tensors, weights_path, metadata)
    with open(weights_path, "rb") as handle:
        weights_sha256 = hashlib.sha256(handle.read()).hexdigest()
    for path in graphs:
        model = onnx.load(path)
        props = {p.key: p.value for p in model.metadata_props}
        props[CARD_KEY] = card_to_json(card)
        props[WEIGHTS_SHA256_KEY] = weights_sha256
        del model.metadata_props[:]
        for key, value in props.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, path)
    print(f"card of {name} written into {weights_path} and {folder}/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--which", choices=("best", "final"), default="best")
    parser.add_argument("--models-dir", default=os.path.join(ROOT, "models"))
    parser.add_argument("--card-only", metavar="NAME", help="rewrite the card of a shipped model")
    args = parser.parse_args()
    if args.card_only:
        write_card(args.card_only, args.models_dir)
    elif args.run_dir:
        ship(args.run_dir, args.which, args.models_dir)
    else:
        parser.error("give a run directory, or --card-only NAME")


if __name__ == "__main__":
    main()
