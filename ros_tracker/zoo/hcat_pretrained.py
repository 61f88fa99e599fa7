"""Load ImageNet ResNet-18 weights in the common layout into HCAT's stride-16 trunk.

ResNet-18 checkpoints (torchvision's and timm's, once converted to safetensors) name their
tensors ``conv1``, ``bn1``, ``layer<s>.<b>.conv1`` ... ``layer<s>.<b>.downsample.{0,1}``,
``layer4.*`` and ``fc.*``. HCAT drops stage 4 and the classifier, so those tensors are left
out and listed in the report; any other key that does not fit the trunk, a missing trunk
tensor or a shape mismatch raises CheckpointMismatch. Weights are read from safetensors only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from torch import nn

from ros_tracker.zoo.checkpoints import load_mapped, read_weights, strip_common_prefix

LOGGER = logging.getLogger(__name__)

# Parts of a full ResNet-18 that the stride-16 trunk does not have.
DROPPED_PREFIXES = ("layer4.", "fc.")

_NORM_NAMES = {"bn1": "norm1", "bn2": "norm2"}
_BLOCK_KEY = re.compile(r"^layer([1-3])\.(\d+)\.(conv1|conv2|bn1|bn2|downsample\.[01])\.(.+)$")
_STEM_KEY = re.compile(r"^(conv1|bn1)\.(.+)$")


@dataclass
class TrunkLoadReport:
    """What a pretrained load did: every source key is in exactly one of these lists."""

    loaded: Dict[str, str] = field(default_factory=dict)  # source key -> trunk key
    dropped: List[str] = field(default_factory=list)  # source keys of layer4 / fc
    kept_own: List[str] = field(default_factory=list)  # trunk keys absent from the source

    def summary(self) -> str:
        dropped_parts = ", ".join(sorted({k.split(".")[0] for k in self.dropped})) or "none"
        return (
            f"loaded {len(self.loaded)} tensors; dropped {len(self.dropped)} ({dropped_parts}); "
            f"kept {len(self.kept_own)} of the trunk's own"
        )


def trunk_key(source_key: str) -> Optional[str]:
    """Our trunk's name for a common-layout ResNet key, or None if it has no place in it."""
    match = _STEM_KEY.match(source_key)
    if match:
        part = "conv" if match.group(1) == "conv1" else "norm"
        return f"stem.{part}.{match.group(2)}"
    match = _BLOCK_KEY.match(source_key)
    if match:
        stage, block, module, tensor = match.groups()
        if module.startswith("downsample"):
            module = "shortcut.conv" if module.endswith("0") else "shortcut.norm"
        else:
            module = _NORM_NAMES.get(module, module)
        return f"stages.{int(stage) - 1}.{block}.{module}.{tensor}"
    return None


def load_resnet18_trunk(
    trunk: nn.Module, state: Dict[str, torch.Tensor], prefix: str = "module."
) -> TrunkLoadReport:
    """Copy a common-layout ResNet-18 state dict into ``trunk`` (a ResNetTrunk).

    ``prefix`` is stripped when every key carries it (data-parallel checkpoints).
    """
    state = strip_common_prefix(state, prefix)
    loaded, dropped, kept = load_mapped(
        trunk, state, trunk_key, lambda key: key.startswith(DROPPED_PREFIXES)
    )
    report = TrunkLoadReport(loaded, dropped, kept)
    LOGGER.info("ResNet-18 trunk: %s", report.summary())
    return report


def load_imagenet_backbone(model: nn.Module, path: str) -> TrunkLoadReport:
    """Initialise an HCAT network's backbone from an ImageNet safetensors file.

    A ResNet-18 checkpoint for the paper's trunk; a MobileNetV2 one (see
    ``mobilenetv2_pretrained``) for ``hcat_mobilenetv2``'s.
    """
    from ros_tracker.zoo.mobilenetv2 import MobileNetV2Trunk

    if isinstance(model.backbone, MobileNetV2Trunk):
        from ros_tracker.zoo.mobilenetv2_pretrained import load_imagenet_trunk

        return load_imagenet_trunk(model.backbone, read_weights(path))
    return load_resnet18_trunk(model.backbone, read_weights(path))
