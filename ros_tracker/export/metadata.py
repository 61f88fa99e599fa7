"""Model cards as ONNX metadata: an exported graph describes itself.

Every exported graph carries ``metadata_props`` with the keys below, so that a folder of ONNX
files (or a copied single graph) is enough to rebuild the card and run the tracker.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Mapping

from ros_tracker.zoo.card import ModelCard

PREFIX = "ros_tracker."
CARD_KEY = PREFIX + "card"
GRAPH_KEY = PREFIX + "graph"  # "template" or "search"


def _tuple_fields() -> Dict[str, bool]:
    # Fields whose annotation is a tuple: JSON gives lists back, the card wants tuples.
    return {f.name: "Tuple" in str(f.type) for f in dataclasses.fields(ModelCard)}


def card_to_json(card: ModelCard) -> str:
    return json.dumps(card.to_dict(), sort_keys=True, default=str)


def card_from_dict(values: Mapping[str, Any]) -> ModelCard:
    """Rebuild a card from ``card.to_dict()`` output; unknown keys (newer writers) are dropped."""
    tuple_fields = _tuple_fields()
    kwargs = {}
    for name, is_tuple in tuple_fields.items():
        if name not in values:
            continue
        value = values[name]
        kwargs[name] = tuple(value) if is_tuple and isinstance(value, list) else value
    return ModelCard(**kwargs)


def card_from_json(text: str) -> ModelCard:
    return card_from_dict(json.loads(text))


def export_metadata(card: ModelCard, graph: str, extra: Mapping[str, str] = ()) -> Dict[str, str]:
    """The metadata_props written into the ``graph`` ("template" or "search") ONNX file."""
    from ros_tracker import __version__

    values = {
        PREFIX + "model": card.name,
        PREFIX + "family": card.family,
        PREFIX + "template_size": str(card.template_size),
        PREFIX + "search_size": str(card.search_size),
        PREFIX + "template_factor": repr(card.template_factor),
        PREFIX + "search_factor": repr(card.search_factor),
        PREFIX + "mean": json.dumps(list(card.mean)),
        PREFIX + "std": json.dumps(list(card.std)),
        PREFIX + "package_version": __version__,
        GRAPH_KEY: graph,
        CARD_KEY: card_to_json(card),
    }
    values.update({PREFIX + k: str(v) for k, v in dict(extra).items()})
    return values
