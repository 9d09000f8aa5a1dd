"""A small CNN sized for the embedded 16×16 digits: fast on a CPU core."""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Three stages (width, 2·width, 4·width channels), global average pooling, a linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.stage1 = nn.Sequential(_conv_bn(in_channels, width), _conv_bn(width, width), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(_conv_bn(width, 2 * width), nn.MaxPool2d(2))
        self.stage3 = _conv_bn(2 * width, 4 * width)
        self.linear = nn.Linear(4 * width, num_classes)

    def stages(self, x: torch.Tensor) -> list:
        """The output of each stage (used by attention distillation)."""
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        return [s1, s2, self.stage3(s2)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[-1].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))
