"""Model cards: everything the runtime, export and docs need to know about a zoo entry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCard:
    """Static description of one zoo entry.

    The network itself never sees images or crops; the card tells the tracker runtime how to
    build its inputs (sizes, context factors, normalisation) and how to read its outputs.
    """

    name: str
    family: str  # "hit" | "hcat" | "mixformerv2" | "abtrack" (selects the runtime decoder)
    paper: str
    backbone: str
    template_size: int
    search_size: int
    template_factor: float  # crop side = sqrt(w*h) * factor, resized to template_size
    search_factor: float
    head: str  # e.g. "corner", "mlp_cls_reg", "box_distribution", "center"
    output_names: Tuple[str, ...]  # raw outputs of the search branch, in order
    template_input_names: Tuple[str, ...] = ("template",)
    template_state_names: Tuple[str, ...] = ("template",)
    feature_size: int = 16  # side of the search-side output grid
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    hann_window: bool = False
    window_influence: float = 0.0  # blend weight of the Hann window where used
    online_template: bool = False
    template_update_interval: int = 0  # frames between online template swaps (0 = never)
    template_update_threshold: float = 0.5  # minimum score for a candidate online template
    postprocess: str = ""  # human-readable summary of what the runtime does with the outputs
    per_frame: str = ""  # what must run every frame (documented per family)
    weights: Optional[str] = None  # file name under models/, safetensors
    weights_license: str = ""
    reference_params: Optional[float] = None  # paper figure, millions
    reference_macs: Optional[float] = None  # paper figure, G MACs per tracked frame
    counting_note: str = ""  # how params and MACs are counted, to compare with the paper
    extra: Dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)
