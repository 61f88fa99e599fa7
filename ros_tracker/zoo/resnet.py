"""ResNet-18 without its last stage: a stride-16 feature extractor (HCAT's backbone).

HCAT keeps ResNet-18's strides and drops stage 4, so a 128 px template gives an 8x8 map and a
256 px search crop a 16x16 map, each with 256 channels. The module names here are our own
(``stem``, ``stages.<i>.<j>``, ``shortcut``); ``hcat_pretrained`` maps the common ResNet
checkpoint layout (``conv1``, ``bn1``, ``layer1.0.conv1`` ...) onto them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class Shortcut(nn.Module):
    """1x1 projection of the block input where the block changes width or resolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (the ResNet-18/34 block)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: Optional[Shortcut] = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + identity)


class Stem(nn.Module):
    """7x7 stride-2 convolution and 3x3 stride-2 max pooling: stride 4 before the stages."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels, 7, stride=2, padding=3, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.norm(self.conv(x))))


class ResNetTrunk(nn.Module):
    """The first three stages of a basic-block ResNet; output stride 16.

    ``widths`` are the stage widths (ResNet-18: 64, 128, 256); the stem has the first stage's
    width. ``blocks`` is the number of blocks per stage (ResNet-18: 2, 2, 2).
    """

    stride = 16

    def __init__(self, widths: Sequence[int] = (64, 128, 256), blocks: Sequence[int] = (2, 2, 2)):
        super().__init__()
        if len(widths) != 3 or len(blocks) != 3:
            raise ValueError("the stride-16 trunk has exactly three stages")
        self.stem = Stem(widths[0])
        stages = []
        in_channels = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(in_channels, width, stride)]
            layers += [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = int(widths[-1])
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x
