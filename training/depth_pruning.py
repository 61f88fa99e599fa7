"""MixFormerV2's model reduction tools: progressive depth pruning and MLP reduction.

Progressive depth pruning (paper Sec. 3.2.2, Eq. 7-9): the student starts as a complete copy
of the teacher; the residual branch of every layer in the eliminated set E is multiplied by
``gamma(t) = 0.5 (1 + cos(pi t / m))`` during the first m epochs and by 0 afterwards, so
those layers fade into identities; then they are removed, which leaves the outputs unchanged.
The zoo's ``Block.residual_decay`` is that gamma.

MLP reduction (Sec. 3.2.2): a student with a narrower MLP takes the leading slice of each
teacher MLP weight, ``w' = w[:d1', :d2']``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, replace
from typing import Iterable, List, Sequence

import torch
from torch import nn

from ros_tracker.zoo.mixformerv2 import NUM_PREDICTION_TOKENS, MixFormerV2


def cosine_decay(progress: float, epochs: float) -> float:
    """gamma(t) of Eq. 9 (t in epochs, may be fractional); 0 from t >= m on."""
    if epochs <= 0 or progress >= epochs:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * max(progress, 0.0) / epochs))


def set_residual_decay(network: MixFormerV2, layers: Iterable[int], gamma: float) -> None:
    for index in layers:
        network.blocks[index].residual_decay = float(gamma)


def check_eliminated(depth: int, layers: Sequence[int]) -> List[int]:
    layers = sorted(int(i) for i in layers)
    if len(set(layers)) != len(layers) or any(i < 0 or i >= depth for i in layers):
        raise ValueError(f"eliminate_layers {layers} must be distinct indices below {depth}")
    if len(layers) >= depth:
        raise ValueError("cannot eliminate every layer")
    return layers


def joint_forward(network: MixFormerV2, template, online_template, search) -> dict:
    """``forward_joint(..., return_layers=True)`` that skips layers whose decay reached 0.

    A layer with residual_decay 0 computes ``x + 0 x branch``, i.e. exactly x for a finite
    branch; skipping it saves its cost once it has been eliminated, with equal outputs.
    Skipped positions repeat the previous tokens in ``layer_tokens``.
    """
    templates = network.embed_templates(template, online_template)
    x = torch.cat([templates, network.embed_search(search)], dim=1)
    layers = []
    for block in network.blocks:
        if block.residual_decay != 0.0:
            x = block.joint_step(x, templates.shape[1])
        layers.append(x)
    box_logits, score_logit = network.predict(x[:, -NUM_PREDICTION_TOKENS:])
    return {"box_logits": box_logits, "score_logit": score_logit, "layer_tokens": layers}


def _rebuilt(network: MixFormerV2, **changes) -> MixFormerV2:
    config = replace(network.config, **changes)
    extra = dict(network.card.extra, bins=config.bins, config=asdict(config))
    card = network.card.replace(extra=extra)
    return MixFormerV2(card, config)


@torch.no_grad()
def remove_layers(network: MixFormerV2, layers: Sequence[int]) -> MixFormerV2:
    """A copy of ``network`` without the given layers (remaining layers renumbered)."""
    layers = check_eliminated(len(network.blocks), layers)
    kept = [i for i in range(len(network.blocks)) if i not in layers]
    pruned = _rebuilt(network, depth=len(kept))
    source = network.state_dict()
    state = {}
    for key, value in source.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            if int(index) not in kept:
                continue
            key = f"blocks.{kept.index(int(index))}.{rest}"
        state[key] = value.clone()
    pruned.load_state_dict(state, strict=True)
    for new_index, old_index in enumerate(kept):
        pruned.blocks[new_index].residual_decay = network.blocks[old_index].residual_decay
    return pruned.to(next(network.parameters()).device).train(network.training)


@torch.no_grad()
def reduce_mlp(network: MixFormerV2, mlp_ratio: float) -> MixFormerV2:
    """A copy with MLP hidden width ``dim x mlp_ratio``, initialised from the leading slice."""
    student = _rebuilt(network, mlp_ratio=float(mlp_ratio))
    own = student.state_dict()
    state = {}
    for key, value in network.state_dict().items():
        want = own[key].shape
        if value.shape != want:
            if not (".mlp.fc1." in key or ".mlp.fc2." in key):
                raise ValueError(
                    f"{key}: unexpected shape change {tuple(value.shape)} -> {tuple(want)}"
                )
            value = value[tuple(slice(0, n) for n in want)]
        state[key] = value.clone()
    student.load_state_dict(state, strict=True)
    return student.to(next(network.parameters()).device)


def copy_network(network: nn.Module) -> nn.Module:
    return copy.deepcopy(network)


def matched_layers(depth: int, eliminated: Sequence[int], explicit: Sequence[int]) -> List[int]:
    """Student layer positions whose outputs mimic the teacher's at the same position.

    Default: the kept layers and the last position (which, once the layers after the last
    kept one are gone, is that kept layer's output).
    """
    if explicit:
        return sorted({int(i) for i in explicit})
    kept = [i for i in range(depth) if i not in set(eliminated)]
    return sorted(set(kept) | {depth - 1})
