"""Wide ResNet (WRN-16-1 by default): three groups of 16/32/64 × widen channels."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


class WideResNet(nn.Module):
    def __init__(self, depth=16, widen=1, in_channels=3, num_classes=10):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        groups, cin = [], widths[0]
        for g, w in enumerate(widths[1:]):
            blocks = [WideBlock(cin if i == 0 else w, w, (1 if g == 0 else 2) if i == 0 else 1) for i in range(n)]
            groups.append(nn.Sequential(*blocks))
            cin = w
        self.group1, self.group2, self.group3 = groups
        self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, num_classes)

    def stages(self, x):
        out = self.conv1(x)
        outs = []
        for g in (self.group1, self.group2, self.group3):
            out = g(out)
            outs.append(out)
        return outs

    def features(self, x):
        out = F.relu(self.bn(self.stages(x)[-1]))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x):
        return self.linear(self.features(x))


def wrn_16_1(in_channels=3, num_classes=10, image_size=32):
    return WideResNet(16, 1, in_channels, num_classes)
