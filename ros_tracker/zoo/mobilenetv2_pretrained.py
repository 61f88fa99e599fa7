"""Load ImageNet MobileNetV2 weights (torchvision's layout) into HCAT's stride-16 trunk.

The ImageNet checkpoint names its tensors ``features.<i>...`` (stem 0, inverted residual
blocks 1-17, final 1x1 convolution 18) and ``classifier.1.*``. The trunk
(:class:`~ros_tracker.zoo.mobilenetv2.MobileNetV2Trunk`) uses the same names for
``features.0`` to ``features.13``, so the key map is the identity there; ``features.14`` to
``features.18`` and ``classifier`` (the stride-32 part and the ImageNet head) are left out and
listed in the report. Any other key, a missing trunk tensor or a shape mismatch raises
CheckpointMismatch. Files are read from safetensors only (``training/tools/
convert_mobilenetv2.py`` turns the published ``.pth`` into one without unpickling code).
"""

from __future__ import annotations

import logging
import re
from typing import Dict, Optional

import torch
from torch import nn

from ros_tracker.zoo.checkpoints import load_mapped, read_weights, strip_common_prefix
from ros_tracker.zoo.hcat_pretrained import TrunkLoadReport
from ros_tracker.zoo.mobilenetv2 import MobileNetV2Trunk

LOGGER = logging.getLogger(__name__)

LAST_TRUNK_BLOCK = 13  # features.13: the last stride-16 block (96 channels)
_FEATURE_KEY = re.compile(r"^features\.(\d+)\.")


class MobileNetV2LoadReport(TrunkLoadReport):
    """TrunkLoadReport whose summary names the dropped blocks (``features.14-18``)."""

    def summary(self) -> str:
        blocks = sorted({int(m.group(1)) for m in map(_FEATURE_KEY.match, self.dropped) if m})
        parts = []
        if blocks:
            parts.append(f"features.{blocks[0]}-{blocks[-1]}")
        if any(key.startswith("classifier.") for key in self.dropped):
            parts.append("classifier")
        return (
            f"loaded {len(self.loaded)} tensors; dropped {len(self.dropped)} "
            f"({', '.join(parts) or 'none'}); kept {len(self.kept_own)} of the trunk's own"
        )


def is_dropped(source_key: str) -> bool:
    """True for the parts of a full MobileNetV2 that the stride-16 trunk does not have."""
    if source_key.startswith("classifier."):
        return True
    match = _FEATURE_KEY.match(source_key)
    return bool(match) and int(match.group(1)) > LAST_TRUNK_BLOCK


def trunk_key(source_key: str) -> Optional[str]:
    """The trunk's name for a checkpoint key (identical names), or None if it has no place."""
    match = _FEATURE_KEY.match(source_key)
    if match and int(match.group(1)) <= LAST_TRUNK_BLOCK:
        return source_key
    return None


def _trunk_of(network_or_trunk: nn.Module) -> MobileNetV2Trunk:
    trunk = getattr(network_or_trunk, "backbone", network_or_trunk)
    if not isinstance(trunk, MobileNetV2Trunk):
        raise TypeError(
            f"expected a MobileNetV2Trunk or a network whose backbone is one, got "
            f"{type(trunk).__name__}"
        )
    return trunk


def load_imagenet_trunk(
    network_or_trunk: nn.Module, state: Dict[str, torch.Tensor], prefix: str = "module."
) -> MobileNetV2LoadReport:
    """Copy a torchvision-layout MobileNetV2 state dict into the trunk (or a network's).

    ``prefix`` is stripped when every key carries it (data-parallel checkpoints).
    """
    trunk = _trunk_of(network_or_trunk)
    state = strip_common_prefix(state, prefix)
    loaded, dropped, kept = load_mapped(trunk, state, trunk_key, is_dropped)
    report = MobileNetV2LoadReport(loaded, dropped, kept)
    LOGGER.info("MobileNetV2 trunk: %s", report.summary())
    return report


def load_imagenet_backbone(model: nn.Module, path: str) -> MobileNetV2LoadReport:
    """Initialise a network's MobileNetV2 backbone from a safetensors file."""
    return load_imagenet_trunk(model, read_weights(path))
