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
    template_input_names: Tuple[str, ...] = ("template",)  # template-side images
    # Name of a further template-side input, (N, 4) float32: the target's box (x1, y1, x2, y2)
    # normalised to the template crop, so the network knows which part of the crop the user
    # boxed. "" for networks that infer the target's extent from the image alone.
    template_box_input: str = ""
    template_state_names: Tuple[str, ...] = ("template",)
    feature_size: int = 16  # side of the search-side output grid
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    hann_window: bool = False
    window_influence: float = 0.0  # blend weight of the Hann window where used
    online_template: bool = False
    template_update_interval: int = 0  # frames between online template swaps (0 = never)
    template_update_threshold: float = 0.5  # minimum score for a candidate online template
    # Box and confidence policy of the runtime (runtime.motion_prior); the defaults are the
    # papers' trackers: no change penalty, sizes taken as estimated, no wider search.
    scale_penalty: float = 0.0  # k of the change penalty exp(-k (r s - 1)) on candidates
    size_lr: float = 0.0  # box size follows the estimate at size_lr x penalty x score (0: off)
    redetect_after: int = 0  # weak frames in a row before searching the whole image (0: never)
    redetect_threshold: float = 0.3  # confidence under which a frame is weak
    # Weight of runtime.appearance_check in the reported confidence (0: the network's own)
    appearance_weight: float = 0.0
    # Weight of runtime.appearance_check in choosing among the network's best candidates
    # (0: the network's pick; decoders that score every cell only)
    appearance_rerank: float = 0.0
    # With appearance_rerank: how much a candidate that looks more like one of the objects the
    # network confused with the target on the initialisation frame loses (0: none)
    distractor_weight: float = 0.0
    # Strength of runtime.size_calibration: box sizes scaled by what the network got wrong on
    # the initialisation frame (0: sizes as estimated; 1: the full measured correction)
    size_calibration: float = 0.0
    # runtime.box_refinement: the box moved (and resized a little) to where the target's first
    # look matches best nearby, when the match (normalised cross-correlation) reaches this
    # (0: off)
    box_refinement: float = 0.0
    # Weight of that match (clipped to [0, 1]) in the reported confidence, like
    # appearance_weight (0: none; needs box_refinement)
    match_weight: float = 0.0
    # The smallest side a tracked box may shrink to, pixels (runtime.boxes). 10 is the floor
    # of the reference trackers; a target a few pixels wide (a drone's view of a far person)
    # needs less.
    min_box_side: float = 10.0
    # Where a cell's (or a bin's) coordinate sits inside it when a distribution over cells is
    # read as a position: 0.5 its centre ((i + 0.5) / n, this project's training), 0.0 its
    # corner (i / n, the HiT and MixFormerV2 authors' soft-argmax).
    coordinate_offset: float = 0.5
    # How crops are cut (runtime.crops.CROP_STYLES): "affine" this project's sub-pixel crop
    # with mean-colour padding; "stark" / "siamfc" the pixel rules of the STARK (HiT,
    # MixFormerV2) and SiamFC / pysot (HCAT) code bases, for the authors' weights.
    crop_style: str = "affine"
    # Confidence reported for a windowed pick (hcat): "raw" the network's score at the picked
    # cell, "windowed" the window-blended score the pick maximised (the HCAT authors').
    reported_score: str = "raw"
    postprocess: str = ""  # human-readable summary of what the runtime does with the outputs
    per_frame: str = ""  # what must run every frame (documented per family)
    weights: Optional[str] = None  # file name under models/, safetensors
    weights_license: str = ""
    reference_params: Optional[float] = None  # paper figure, millions
    reference_macs: Optional[float] = None  # paper figure, G MACs per tracked frame
    counting_note: str = ""  # how params and MACs are counted, to compare with the paper
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def template_inputs(self) -> Tuple[str, ...]:
        """Every input of the template graph, in order: the images, then the box if any."""
        box = (self.template_box_input,) if self.template_box_input else ()
        return tuple(self.template_input_names) + box

    def template_input_shape(self, name: str, batch: int = 1) -> Tuple[int, ...]:
        """Static shape of one template-graph input."""
        if name == self.template_box_input:
            return (batch, 4)
        return (batch, 3, self.template_size, self.template_size)

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)
