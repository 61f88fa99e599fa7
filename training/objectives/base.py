"""What a family objective provides to the trainer.

The trainer owns the optimisation loop; an objective knows its family: which network is
trained (it may replace the configured one, e.g. a student copied from a teacher), which
parameters are frozen, how a batch goes through the network, the loss, what changes with
training progress (progressive depth pruning) and what network the run finally produces
(pruned layers or dimensions removed).

``forward`` is called inside the trainer's DDP-wrapped module, so every trainable parameter
takes part in the gradient all-reduce; ``loss`` runs outside it.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from torch import nn

Batch = Dict[str, torch.Tensor]
Stats = Dict[str, torch.Tensor]


class Objective:
    """Base class; subclasses override forward and loss (and the hooks they need)."""

    # DDP must tolerate parameters without gradients in some steps (skipped blocks).
    ddp_find_unused_parameters = False

    def __init__(self, config: Dict[str, Any], device: torch.device) -> None:
        self.config = config
        self.device = device
        self.loss_config = config["loss"]

    def build(self, network: nn.Module) -> nn.Module:
        """The network to train (default: the configured one)."""
        return network

    def trainable(self, name: str) -> bool:
        """Whether parameter ``name`` is optimised (default: all)."""
        return True

    def on_progress(self, network: nn.Module, progress: float) -> Dict[str, float]:
        """Called before each step with the training progress in epochs; returns scalars."""
        return {}

    def forward(self, network: nn.Module, batch: Batch) -> Dict[str, Any]:
        raise NotImplementedError

    def loss(self, outputs: Dict[str, Any], batch: Batch) -> Tuple[torch.Tensor, Stats]:
        raise NotImplementedError

    def finalize(self, network: nn.Module, final: bool = True) -> nn.Module:
        """The network the run produces (default: the trained one).

        Also called on a copy for each validation (``final`` False): what the run would
        produce if it ended now.
        """
        return network

    def teachers(self) -> Tuple[nn.Module, ...]:
        """Frozen networks the objective runs (moved to the device by the trainer)."""
        return ()


def template_and_search(batch: Batch, network: nn.Module) -> Tuple[torch.Tensor, ...]:
    """The network's inputs for one batch: the first template, its box where the network's
    card takes one (``template_box_input``), then the search crop."""
    inputs: Tuple[torch.Tensor, ...] = (batch["templates"][:, 0],)
    if network.card.template_box_input:
        inputs += (batch["template_boxes"][:, 0],)
    return inputs + (batch["search"],)
