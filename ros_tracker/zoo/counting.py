"""Parameter and MAC counts per tracked frame, counted the way the papers count them.

Two conventions exist in the tracking literature:

* ``"all"``: every multiply-accumulate of the forward pass, including the attention matrix
  products (torch's FLOP counter on aten ops, FLOPs / 2);
* ``"layers"``: only the MACs of convolution and linear layers (what thop-style hooks see),
  which leaves out attention's QK^T and AV products.

Each model card's ``counting_note`` says which one matches its paper's table.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, exclude: Optional[Iterable[str]] = None) -> int:
    """Number of parameters, optionally leaving out those whose name starts with a prefix."""
    prefixes = tuple(exclude or ())
    return sum(
        p.numel() for n, p in model.named_parameters() if not (prefixes and n.startswith(prefixes))
    )


def _layer_macs(model: nn.Module, run) -> int:
    total = [0]

    def conv_hook(module: nn.Module, inputs, output) -> None:
        kernel = module.weight.shape[1] * int(torch.tensor(module.weight.shape[2:]).prod())
        total[0] += output.numel() * kernel

    def linear_hook(module: nn.Module, inputs, output) -> None:
        total[0] += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            if isinstance(module, nn.ConvTranspose2d):
                handles.append(module.register_forward_hook(_transposed_hook(total)))
            else:
                handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def _transposed_hook(total):
    def hook(module: nn.ConvTranspose2d, inputs, output) -> None:
        # Every input element is scattered through the kernel: in_elems * out_ch/groups * k*k.
        x = inputs[0]
        kernel = int(torch.tensor(module.weight.shape[2:]).prod())
        total[0] += x.numel() * (module.out_channels // module.groups) * kernel

    return hook


def count_macs(model: nn.Module, run, mode: str = "all") -> int:
    """MACs of calling ``run()`` (a closure doing one tracked frame's forward pass)."""
    if mode == "layers":
        return _layer_macs(model, run)
    if mode != "all":
        raise ValueError(f"mode must be 'all' or 'layers', got {mode!r}")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        run()
    return counter.get_total_flops() // 2
