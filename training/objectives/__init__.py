"""Family objectives: losses, stages and what each training run produces."""

from __future__ import annotations

from typing import Any, Dict

import torch

from training.objectives.base import Objective


def make_objective(family: str, config: Dict[str, Any], device: torch.device) -> Objective:
    if family in ("hit", "mixvit"):
        from training.objectives.simple import CornerObjective

        return CornerObjective(config, device)
    if family == "hcat":
        from training.objectives.simple import HCATObjective

        return HCATObjective(config, device)
    if family == "abtrack":
        from training.objectives.abtrack import ABTrackObjective

        return ABTrackObjective(config, device)
    if family == "mixformerv2":
        from training.objectives.mixformerv2 import MixFormerV2Objective

        return MixFormerV2Objective(config, device)
    raise ValueError(f"no training objective for family {family!r}")


__all__ = ["Objective", "make_objective"]
