"""Building the network of a training config: zoo entry, pretrained backbone, earlier weights."""

from __future__ import annotations

import logging
from typing import Any, Dict, Tuple

from torch import nn

from ros_tracker.zoo.checkpoints import load_weights
from ros_tracker.zoo.registry import create_model, get_card
from training.mixvit import TEACHERS, build_mixvit_teacher

LOGGER = logging.getLogger("training")

# Parameter-name prefixes of each family's backbone (the part initialised from ImageNet /
# MAE weights, trained with the lower learning rate).
BACKBONE_PREFIXES: Dict[str, Tuple[str, ...]] = {
    "hit": ("backbone.",),
    "hcat": ("backbone.",),
    # The authors' optimizer puts everything under "backbone" at the ViT rate, their
    # prediction (reg) tokens and position included.
    "mixformerv2": ("patch_embed.", "pos_embed", "blocks.", "prediction_tokens"),
    "mixvit": ("patch_embed.", "pos_embed", "blocks."),
    "abtrack": ("patch_embed.", "pos_embed", "blocks."),
}


def family_of(name: str) -> str:
    """Training family of a model name: the card's family, or ``mixvit`` for the teachers."""
    if name in TEACHERS:
        return "mixvit"
    return get_card(name).family


def create_network(name: str, overrides: Dict[str, Any]) -> nn.Module:
    """A randomly initialised network (zoo entry or a MixViT teacher)."""
    if name in TEACHERS:
        return build_mixvit_teacher(name, **dict(overrides))
    return create_model(name, **dict(overrides))


def load_pretrained_backbone(network: nn.Module, family: str, path: str) -> None:
    """ImageNet / MAE backbone weights in the published layouts (see each zoo loader)."""
    if family == "hit":
        from ros_tracker.zoo.hit_pretrained import load_timm_levit

        report = load_timm_levit(network, path)
    elif family == "hcat":
        from ros_tracker.zoo.hcat_pretrained import load_imagenet_backbone

        report = load_imagenet_backbone(network, path)
    elif family in ("mixformerv2", "mixvit"):
        from ros_tracker.zoo.vit_pretrained import load_vit_pretrained

        report = load_vit_pretrained(network, path)
    elif family == "abtrack":
        from ros_tracker.zoo.deit_pretrained import load_timm_vit

        report = load_timm_vit(network, path)
    else:
        raise ValueError(f"no pretrained loader for family {family!r}")
    LOGGER.info("pretrained backbone from %s: %s", path, getattr(report, "summary", lambda: "")())


def build_network(config: Dict[str, Any]) -> Tuple[nn.Module, str]:
    """(network, family) of ``config['model']``, with pretrained and init weights applied."""
    model = config["model"]
    overrides = dict(model["overrides"])
    family = family_of(model["name"])
    if family == "abtrack" and config["abtrack"]["pruned"]:
        overrides.setdefault("pruned", True)
        overrides.setdefault("pruning_ratio", config["abtrack"]["pruning_ratio"])
    network = create_network(model["name"], overrides)
    if model["pretrained"]:
        load_pretrained_backbone(network, family, model["pretrained"])
    if model["init_weights"]:
        load_weights(network, model["init_weights"])
        LOGGER.info("weights from %s", model["init_weights"])
    return network, family
