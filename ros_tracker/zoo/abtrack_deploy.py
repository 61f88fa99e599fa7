"""ABTrack's deployable form: per-block graphs with the bypass decision taken between them.

Each stage below is a small module sharing its parameters with the network, with static
input shapes, so it can be exported on its own (ONNX opset 17, one TensorRT engine each):

==============  =========================================  ===================================
graph           inputs                                     outputs
==============  =========================================  ===================================
template        template (N,3,128,128)                     template_tokens (N,64,d)
stem            template_tokens, search (N,3,256,256)      tokens (N,321,d)
decision_i      tokens                                     bypass_prob (N,1)
block_i         tokens                                     tokens
head            tokens                                     score_map, offset_map, size_map
==============  =========================================  ===================================

The runtime loop (:meth:`DeployableABTrack.run` is its reference implementation):
``tokens = stem(template_tokens, search)``; for each gated block i,
``if decision_i(tokens) <= rho: tokens = block_i(tokens)``; ``outputs = head(tokens)``.
A bypassed block leaves the tokens untouched, so the next decision reads the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import torch
from torch import nn

from ros_tracker.zoo.abtrack import ABTrack


class TemplateStage(nn.Module):
    def __init__(self, net: ABTrack) -> None:
        super().__init__()
        self.net = net

    def forward(self, template: torch.Tensor) -> torch.Tensor:
        return self.net.encode_template(template)[0]


class StemStage(nn.Module):
    """Search embedding, bypass token and the always-run blocks."""

    def __init__(self, net: ABTrack) -> None:
        super().__init__()
        self.net = net

    def forward(self, template_tokens: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.net.run_stem(template_tokens, search)


class DecisionStage(nn.Module):
    def __init__(self, net: ABTrack, index: int) -> None:
        super().__init__()
        self.decision = net.decisions[index]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decision(tokens)


class BlockStage(nn.Module):
    def __init__(self, net: ABTrack, index: int) -> None:
        super().__init__()
        self.block = net.gated_block(index)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.block(tokens)


class HeadStage(nn.Module):
    """Final norm, search tokens as a map, center head."""

    def __init__(self, net: ABTrack) -> None:
        super().__init__()
        self.net = net

    def forward(self, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.net.run_head(tokens)


@dataclass
class StageGraph:
    """One exportable graph: module, example inputs of the static shapes, I/O names."""

    name: str
    module: nn.Module
    example_inputs: Tuple[torch.Tensor, ...]
    input_names: Tuple[str, ...]
    output_names: Tuple[str, ...]


class DeployableABTrack:
    """The network split into its graphs, plus the runtime's reference stepping loop."""

    def __init__(self, net: ABTrack) -> None:
        self.net = net
        self.threshold = float(net.config.bypass_threshold)
        self.template = TemplateStage(net)
        self.stem = StemStage(net)
        self.decisions = [DecisionStage(net, i) for i in range(len(net.decisions))]
        self.blocks = [BlockStage(net, i) for i in range(len(net.decisions))]
        self.head = HeadStage(net)
        # New modules start in training mode; exporters restore a module's mode after export,
        # which would switch the shared network (BatchNorm in the head) to training.
        for stage in [self.template, self.stem, self.head, *self.decisions, *self.blocks]:
            stage.train(net.training)

    def graphs(self, batch: int = 1) -> List[StageGraph]:
        """Every graph with example inputs, in running order (what an exporter loops over)."""
        c = self.net.config
        template = torch.randn(batch, 3, c.template_size, c.template_size)
        search = torch.randn(batch, 3, c.search_size, c.search_size)
        template_tokens = torch.randn(batch, c.template_grid**2, c.embed_dim)
        tokens = torch.randn(batch, 1 + c.template_grid**2 + c.search_grid**2, c.embed_dim)
        graphs = [
            StageGraph("template", self.template, (template,), ("template",), ("template_tokens",)),
            StageGraph(
                "stem",
                self.stem,
                (template_tokens, search),
                ("template_tokens", "search"),
                ("tokens",),
            ),
        ]
        for index, (decision, block) in enumerate(zip(self.decisions, self.blocks)):
            graphs.append(
                StageGraph(f"decision_{index}", decision, (tokens,), ("tokens",), ("bypass_prob",))
            )
            graphs.append(
                StageGraph(f"block_{index}", block, (tokens,), ("tokens",), ("tokens_out",))
            )
        graphs.append(
            StageGraph("head", self.head, (tokens,), ("tokens",), tuple(self.net.card.output_names))
        )
        return graphs

    @torch.no_grad()
    def run(
        self, template_tokens: torch.Tensor, search: torch.Tensor
    ) -> Tuple[Tuple[torch.Tensor, ...], torch.Tensor]:
        """Step through the graphs as a runtime does; returns (outputs, bypassed (N, gated)).

        Samples of a batch decide independently: a block runs if any sample needs it and the
        others keep their tokens.
        """
        tokens = self.stem(template_tokens, search)
        bypassed = []
        for decision, block in zip(self.decisions, self.blocks):
            skip = decision(tokens)[:, 0] > self.threshold
            bypassed.append(skip)
            if bool(skip.all()):
                continue
            tokens = torch.where(skip[:, None, None], tokens, block(tokens))
        empty = torch.zeros(search.shape[0], 0, dtype=torch.bool)
        return self.head(tokens), torch.stack(bypassed, dim=1) if bypassed else empty
