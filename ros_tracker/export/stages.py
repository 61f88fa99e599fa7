"""Per-block graphs for networks whose per-frame work depends on the input (ABTrack).

ABTrack skips transformer blocks when its bypass decision says so. One static graph cannot
skip anything (the two-graph export computes every block and selects with ``Where``), so a
network whose card says ``extra["deployable_form"] == "per_block_graphs"`` is additionally
exported as the stages its zoo module defines (ros_tracker.zoo.abtrack_deploy), in
``<export>/stages/``::

    stages.json          order, names and the bypass threshold
    stem.onnx            template state + search -> tokens
    decision_<i>.onnx    tokens -> bypass probability (N, 1)
    block_<i>.onnx       tokens -> tokens (run only when the probability <= threshold)
    head.onnx            tokens -> card.output_names

The ONNX Runtime backend runs these when present; the template graph is the export's own
``template.onnx``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ros_tracker.export.metadata import export_metadata

if TYPE_CHECKING:  # reading a manifest (the runtime) needs no torch
    from torch import nn

STAGES_DIR = "stages"
MANIFEST = "stages.json"
MANIFEST_FORMAT = 1
PER_BLOCK_FORM = "per_block_graphs"


def has_per_block_form(network: nn.Module) -> bool:
    return network.card.extra.get("deployable_form") == PER_BLOCK_FORM


def _deployable(network: nn.Module):
    if network.card.family != "abtrack":
        raise NotImplementedError(
            f"per-block graphs are defined for the abtrack family only, not {network.card.family}"
        )
    from ros_tracker.zoo.abtrack_deploy import DeployableABTrack

    return DeployableABTrack(network)


def export_stages(network: nn.Module, folder: str, opset: int) -> str:
    """Export every stage graph into ``folder`` (created) and write the manifest; its path."""
    import torch

    from ros_tracker.export.onnx import _check_graph, _run_exporter, _set_metadata

    deployable = _deployable(network)
    os.makedirs(folder, exist_ok=True)
    files: Dict[str, Dict[str, Any]] = {}
    for stage in deployable.graphs():
        if stage.name == "template":  # identical to the export's template.onnx
            continue
        path = os.path.join(folder, stage.name + ".onnx")
        with torch.no_grad():
            _run_exporter(
                stage.module,
                stage.example_inputs,
                path,
                stage.input_names,
                stage.output_names,
                opset,
            )
        _set_metadata(path, export_metadata(network.card, "stage:" + stage.name))
        _check_graph(path, opset, expect_layer_norm=False)
        files[stage.name] = {
            "file": stage.name + ".onnx",
            "inputs": list(stage.input_names),
            "outputs": list(stage.output_names),
        }
    gated = len(deployable.decisions)
    manifest = {
        "format": MANIFEST_FORMAT,
        "model": network.card.name,
        "threshold": deployable.threshold,
        "stem": files["stem"],
        "gated": [
            {"decision": files[f"decision_{i}"], "block": files[f"block_{i}"]} for i in range(gated)
        ],
        "head": files["head"],
    }
    path = os.path.join(folder, MANIFEST)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    return path


def read_manifest(export_folder: str) -> Optional[Dict[str, Any]]:
    """The stages manifest of an export folder, or None when it has no per-block graphs."""
    path = os.path.join(export_folder, STAGES_DIR, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except ValueError as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: unsupported stages format {manifest.get('format')!r}")
    missing = [
        entry["file"]
        for entry in stage_entries(manifest)
        if not os.path.isfile(os.path.join(export_folder, STAGES_DIR, entry["file"]))
    ]
    if missing:
        raise FileNotFoundError(f"{path} names missing stage graphs: {', '.join(missing)}")
    return manifest


def stage_entries(manifest: Dict[str, Any]) -> List[Dict[str, Any]]:
    entries = [manifest["stem"]]
    for gate in manifest["gated"]:
        entries.extend((gate["decision"], gate["block"]))
    entries.append(manifest["head"])
    return entries
