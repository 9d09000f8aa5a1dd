"""ResNet-9 (the DAWNBench / Myrtle network the DBA paper uses as its backbone)."""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """prep (w) → [2w, pool, residual] → [4w, pool] → [8w, pool, residual] → global max pool → linear.
    Width ``w`` = 64 gives the standard 6.6 M-parameter network."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(in_channels, width),
            _conv_bn(width, 2 * width, pool=True), Residual(2 * width),
            _conv_bn(2 * width, 4 * width, pool=True),
            _conv_bn(4 * width, 8 * width, pool=True), Residual(8 * width),
        )
        self.linear = nn.Linear(8 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).amax(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))
