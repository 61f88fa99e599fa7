"""MobileNetV2 truncated at stride 16: a cheap CPU backbone for HCAT.

MobileNetV2 (Sandler et al., CVPR 2018) is a 3x3 stride-2 stem followed by inverted residual
blocks: a 1x1 expansion (ReLU6), a 3x3 depthwise convolution (ReLU6) and a linear 1x1
projection, with a residual connection where input and output match. The ImageNet network's
block table (expansion t, channels c, repeats n, first stride s) is::

    t  c    n  s   -> features index
    1  16   1  1      1
    6  24   2  2      2-3
    6  32   3  2      4-6
    6  64   4  2      7-10      (stride 16 from here)
    6  96   3  1      11-13     <- the trunk ends here
    6  160  3  2      14-16     (stride 32: left out)
    6  320  1  1      17        (left out)

The trunk keeps the stem and blocks 1-13, so a 128 px template gives an 8x8 map and a 256 px
search crop a 16x16 map, each with 96 channels (HCAT's stride; its ResNet-18 trunk also stops
before the last stride-2 stage).

Module names follow the widespread ImageNet checkpoint layout exactly (``features.<i>`` for
the stem and blocks; inside a block ``conv.<j>``, where a conv-norm-ReLU6 unit is a sequence
``0`` conv, ``1`` norm), so such a state dict's ``features.0`` to ``features.13`` keys load
unchanged; ``mobilenetv2_pretrained`` drops the rest and checks everything else.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

# (expansion, output channels, repeats, first stride) of the stride-16 part of MobileNetV2.
STRIDE16_BLOCKS: Tuple[Tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
)
STEM_CHANNELS = 32


class ConvNormReLU6(nn.Sequential):
    """Convolution (no bias), BatchNorm, ReLU6; children 0, 1, 2 as in the checkpoint layout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when t = 1), depthwise 3x3, project (1x1, linear), + identity."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: List[nn.Module] = []
        if expansion != 1:
            layers.append(ConvNormReLU6(in_channels, hidden, 1))
        layers += [
            ConvNormReLU6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def inverted_residual_blocks(
    table: Sequence[Tuple[int, int, int, int]], in_channels: int
) -> List[InvertedResidual]:
    """The blocks of a (t, c, n, s) table, in order; the first of each group has stride s."""
    blocks = []
    for expansion, channels, repeats, stride in table:
        for index in range(repeats):
            blocks.append(
                InvertedResidual(in_channels, channels, stride if index == 0 else 1, expansion)
            )
            in_channels = channels
    return blocks


class MobileNetV2Trunk(nn.Module):
    """MobileNetV2's stem and blocks 1-13 (``features.0`` to ``features.13``); stride 16."""

    stride = 16

    def __init__(self) -> None:
        super().__init__()
        blocks = inverted_residual_blocks(STRIDE16_BLOCKS, STEM_CHANNELS)
        self.features = nn.Sequential(ConvNormReLU6(3, STEM_CHANNELS, 3, stride=2), *blocks)
        self.out_channels = STRIDE16_BLOCKS[-1][1]
        self._init_weights()

    def _init_weights(self) -> None:
        # Random-init fallback when no ImageNet weights are loaded (He init, unit BatchNorm).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
