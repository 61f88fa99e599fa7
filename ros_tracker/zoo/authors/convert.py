"""One release checkpoint -> one zoo weights file (safetensors with its model card).

``convert_release("hit_base", "VT_ep1500.pth.tar", "hit_base.safetensors")`` reads the file
safely (:mod:`~ros_tracker.zoo.authors.reader`), maps it onto the zoo network with the
family's explicit key map, checks that every tensor found its place, and writes the weights
with the converted card (the authors' test-time settings) and the builder overrides in the
safetensors metadata. The result runs wherever a zoo weights file runs
(``model:=/path/hit_base.safetensors``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Dict, List, Optional

from ros_tracker.zoo.authors import hcat, hit, mixformerv2
from ros_tracker.zoo.authors.reader import read_release_checkpoint
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.checkpoints import CheckpointMismatch, card_metadata, save_weights

_FAMILIES = (hit, hcat, mixformerv2)
SAFETENSORS_SUFFIX = ".safetensors"
# The authors' trackers have no change penalty, no size smoothing and no wider search for a
# lost target: converted cards say so whatever the zoo card's box policy.
AUTHORS_BOX_POLICY = {"scale_penalty": 0.0, "size_lr": 0.0, "redetect_after": 0}


def supported_models() -> List[str]:
    return [name for family in _FAMILIES for name in family.MODELS]


def converter_for(model: str) -> ModuleType:
    """The family module that converts ``model``'s release checkpoints."""
    for family in _FAMILIES:
        if model in family.MODELS:
            return family
    raise KeyError(
        f"no release-checkpoint converter for {model!r}; convertible models: "
        f"{', '.join(supported_models())}"
    )


@dataclass
class Conversion:
    """What one conversion read and wrote."""

    out: str
    card: ModelCard
    overrides: Dict[str, Any]
    reader: str
    tensors_read: int
    tensors_written: int
    placeholders: List[str] = field(default_factory=list)

    def summary(self) -> str:
        stood_in = ", ".join(self.placeholders) or "none"
        return (
            f"read {self.tensors_read} tensors ({self.reader}; classes stood in by inert "
            f"placeholders: {stood_in}); wrote {self.tensors_written} to {self.out}"
        )


def default_output(model: str) -> str:
    return model + SAFETENSORS_SUFFIX


def convert_release(model: str, checkpoint: str, out: Optional[str] = None) -> Conversion:
    """Convert the authors' ``checkpoint`` of ``model``; nothing is written unless it fits."""
    from ros_tracker import __version__
    from ros_tracker.zoo.registry import create_model

    family = converter_for(model)
    out = out or default_output(model)
    if not out.endswith(SAFETENSORS_SUFFIX):
        raise ValueError(f"--out must name a {SAFETENSORS_SUFFIX} file, got {out}")
    release = read_release_checkpoint(checkpoint)
    overrides = family.overrides(release.state, model)
    network = create_model(model, **overrides)
    try:
        state = family.convert_state(release.state, network)
    except CheckpointMismatch as error:
        raise ValueError(
            f"{checkpoint} is not a {model} checkpoint in the authors' layout: {error}"
        ) from error
    network.load_state_dict(state, strict=True)
    card = family.converted_card(network.card).replace(**AUTHORS_BOX_POLICY)
    network.card = card
    metadata = card_metadata(card)
    metadata["overrides"] = json.dumps(overrides, sort_keys=True)
    metadata["converted_from"] = os.path.basename(checkpoint)
    metadata["converted_by"] = f"ros-tracker {__version__} convert ({release.reader} reader)"
    save_weights(network, out, metadata=metadata)
    return Conversion(
        out=out,
        card=card,
        overrides=overrides,
        reader=release.reader,
        tensors_read=len(release.state),
        tensors_written=len(state),
        placeholders=release.placeholders,
    )
