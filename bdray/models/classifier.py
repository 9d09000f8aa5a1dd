"""The model input stage: every model takes [0, 1] pixels and normalises inside."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ImageClassifier(nn.Module):
    """``backbone`` behind a fixed per-channel normalisation.

    ``forward(x)`` takes pixels in [0, 1]; ``forward(x, normalized=True)`` takes already
    normalised inputs (DHBE's generators produce those).  ``features`` gives the penultimate
    activations, used for activation-difference metrics.
    """

    def __init__(self, backbone: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def forward(self, x: torch.Tensor, normalized: bool = False, with_features: bool = False):
        """Logits; with ``with_features`` the pair (logits, penultimate features) from one pass
        (through a DDP wrapper, so gradients of both are synchronised)."""
        x = x if normalized else self.normalize(x)
        if with_features:
            z = self.backbone.features(x)
            return self.backbone.linear(z), z
        return self.backbone(x)

    def features(self, x: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        return self.backbone.features(x if normalized else self.normalize(x))
