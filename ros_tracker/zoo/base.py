"""The interface every zoo network implements.

A tracker network is split in two so that deployment can run the template side once:

* ``encode_template(*templates)`` runs once per initialisation (or per template update) and
  returns the template state tensors named by ``card.template_state_names``;
* ``track_search(*state, search)`` runs every frame and returns the raw outputs named by
  ``card.output_names`` (score maps, box distributions, ...), never boxes in image pixels.

Inputs are normalised float tensors (N, 3, S, S) of the card's sizes. Cropping, windows,
decoding and mapping back to the image belong to the tracker runtime.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ros_tracker.zoo.card import ModelCard


class TrackerNetwork(nn.Module):
    """Base class: subclasses implement encode_template and track_search."""

    def __init__(self, card: ModelCard) -> None:
        super().__init__()
        self.card = card

    def encode_template(self, *templates: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def track_search(self, *state_and_search: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def forward(self, *templates_and_search: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Both halves in one call (training and parity checks): returns outputs by name."""
        *templates, search = templates_and_search
        state = self.encode_template(*templates)
        outputs = self.track_search(*state, search)
        return dict(zip(self.card.output_names, outputs))

    def paper_complexity(self) -> Optional[Tuple[Optional[int], int]]:
        """(params, MACs) counted the way the family's paper counts them, for comparing with
        the card's reference figures; None where the paper gives none. params may be None
        when the paper gives only a MAC figure."""
        return None

    def example_inputs(self, batch: int = 1) -> Dict[str, torch.Tensor]:
        """Random inputs of the card's static shapes, keyed by input name (export, tests)."""
        inputs = example_template_inputs(self.card, batch)
        inputs["search"] = torch.randn(batch, 3, self.card.search_size, self.card.search_size)
        return inputs


def example_template_inputs(
    card: ModelCard, batch: int = 1, generator: Optional[torch.Generator] = None
) -> Dict[str, torch.Tensor]:
    """Random template-graph inputs (card.template_inputs order): images from N(0, 1), and a
    box around the crop centre of random size and aspect where the card takes one."""
    inputs: Dict[str, torch.Tensor] = {}
    for name in card.template_inputs:
        shape = card.template_input_shape(name, batch)
        if name == card.template_box_input:
            centre = 0.5 + 0.05 * torch.randn(batch, 2, generator=generator)
            half = 0.1 + 0.3 * torch.rand(batch, 2, generator=generator)
            inputs[name] = torch.cat((centre - half, centre + half), dim=1)
        else:
            inputs[name] = torch.randn(shape, generator=generator)
    return inputs
