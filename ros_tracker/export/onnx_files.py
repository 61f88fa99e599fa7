"""The read side of an ONNX export: find its two graphs and rebuild the card (no torch).

What a robot without PyTorch needs to run an exported model (ros_tracker.export.onnx writes
the exports; it imports torch). Layout and metadata: see ros_tracker.export.onnx and
ros_tracker.export.metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ros_tracker.export.metadata import CARD_KEY, GRAPH_KEY, PREFIX, card_from_json
from ros_tracker.zoo.card import ModelCard

TEMPLATE_FILE = "template.onnx"
SEARCH_FILE = "search.onnx"
SEARCH_INPUT = "search"
# sha256 of the .safetensors file the graphs were exported from (written by the ship tool):
# lets a zoo name use the installed graphs only when they belong to the installed weights.
WEIGHTS_SHA256_KEY = PREFIX + "weights_sha256"


@dataclass
class OnnxExport:
    """Paths of one exported model and the card read from (or written into) its metadata."""

    card: ModelCard
    template_path: str
    search_path: str
    stages: Optional[Dict[str, Any]] = None  # per-block graphs manifest (export.stages)

    @property
    def folder(self) -> str:
        return os.path.dirname(os.path.abspath(self.search_path))


def state_names(card: ModelCard) -> Tuple[str, ...]:
    """ONNX names of the template state: the card's names, renamed where one equals an input.

    A graph cannot output a value under the name of one of its inputs, and a card may use the
    same name for the template image and the state derived from it ("template").
    """
    inputs = set(card.template_inputs)
    return tuple(name + "_state" if name in inputs else name for name in card.template_state_names)


def read_metadata(path: str) -> Dict[str, str]:
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError and friends for corrupt files
        raise ValueError(f"cannot read ONNX file {path}: {error}") from error
    return {entry.key: entry.value for entry in model.metadata_props}


def read_card(path: str) -> ModelCard:
    metadata = read_metadata(path)
    if CARD_KEY not in metadata:
        raise ValueError(
            f"ONNX file {path} has no {CARD_KEY} metadata: it was not exported by ros_tracker"
        )
    return card_from_json(metadata[CARD_KEY])


def find_export(path: str) -> OnnxExport:
    """The export a path refers to: its folder, or either of its two ONNX files."""
    path = os.path.abspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    if not os.path.isdir(path) and not os.path.exists(path):
        raise FileNotFoundError(f"ONNX model not found: {path}")
    template_path = os.path.join(folder, TEMPLATE_FILE)
    search_path = os.path.join(folder, SEARCH_FILE)
    for required in (template_path, search_path):
        if not os.path.isfile(required):
            raise FileNotFoundError(
                f"exported model {folder} is incomplete: {required} is missing (an export "
                f"is a folder with {TEMPLATE_FILE} and {SEARCH_FILE})"
            )
    card = read_card(search_path)
    template_card = read_card(template_path)
    if template_card.name != card.name:
        raise ValueError(
            f"{template_path} and {search_path} come from different models "
            f"({template_card.name}, {card.name})"
        )
    for graph_path, graph in ((template_path, "template"), (search_path, "search")):
        found = read_metadata(graph_path).get(GRAPH_KEY)
        if found != graph:
            raise ValueError(f"{graph_path} is marked as the {found!r} graph, expected {graph!r}")
    from ros_tracker.export.stages import read_manifest

    return OnnxExport(
        card=card,
        template_path=template_path,
        search_path=search_path,
        stages=read_manifest(folder),
    )
