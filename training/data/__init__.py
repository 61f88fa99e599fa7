"""Training data: readers, pair sampling, crops and augmentation, labels, loaders."""

from __future__ import annotations

from typing import Any, Dict

from training.data.dataset import PairDataset, make_loader, steps_per_epoch
from training.data.labels import LabelMaker
from training.data.processing import CropSettings, PairProcessor
from training.data.sequences import DataError, load_dataset

# Families whose networks take a second (online) template.
TWO_TEMPLATE_FAMILIES = ("mixformerv2", "mixvit")


def crop_settings(config: Dict[str, Any], card) -> CropSettings:
    """Crop sizes and factors from the network's card unless the config sets them."""
    data = config["data"]
    return CropSettings(
        template_size=card.template_size,
        search_size=card.search_size,
        template_factor=data["template_factor"] or card.template_factor,
        search_factor=data["search_factor"] or card.search_factor,
        mean=tuple(card.mean),
        std=tuple(card.std),
        center_jitter_template=data["center_jitter_template"],
        center_jitter_search=data["center_jitter_search"],
        scale_jitter_template=data["scale_jitter_template"],
        scale_jitter_search=data["scale_jitter_search"],
        brightness_jitter=data["brightness_jitter"],
        grayscale_prob=data["grayscale_prob"],
        flip_prob=data["flip_prob"],
        blur_prob=data["blur_prob"],
        blur_sigma=data["blur_sigma"],
        min_box_pixels=data["min_box_pixels"],
    )


def build_pair_dataset(config: Dict[str, Any], card, family: str) -> PairDataset:
    """The training dataset of a resolved config for a network with ``card``."""
    data = config["data"]
    if not data["datasets"]:
        raise DataError("data.datasets is empty: configure at least one dataset")
    sources = [load_dataset(entry, data["min_box_pixels"]) for entry in data["datasets"]]
    templates = data["num_templates"] or (2 if family in TWO_TEMPLATE_FAMILIES else 1)
    labels = LabelMaker(
        family,
        grid=card.feature_size,
        bins=int(card.extra.get("bins", 0) or 0),
        negative_weight=config["loss"]["negative_weight"],
    )
    return PairDataset(
        sources,
        PairProcessor(crop_settings(config, card)),
        labels,
        seed=config["run"]["seed"],
        samples_per_epoch=data["samples_per_epoch"],
        max_gap=data["max_gap"],
        num_templates=templates,
        negative_prob=data["negative_prob"],
        max_attempts=data["max_attempts"],
    )


__all__ = [
    "DataError",
    "PairDataset",
    "build_pair_dataset",
    "crop_settings",
    "make_loader",
    "steps_per_epoch",
]
