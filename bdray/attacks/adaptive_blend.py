"""``adaptive_blend``: the Adaptive-Blend attack (Qi et al., "Revisiting the assumption of latent
separability for backdoor defenses", ICLR 2023; docs/methods.md).

Built against defenses that separate poisoned from clean samples in latent space (Spectral
Signatures, Activation Clustering, ...).  The blend pattern is cut into ``pieces`` grid cells;
each poisoned training image is blended (``train_alpha``) with a random ``1 − mask_rate`` share of
the cells only, and relabelled; as many "cover" (regularisation) samples per poisoned one
(``cover_ratio``) get the same partial blend but keep their true label, so the partial trigger
alone does not decide the class and the poisoned samples' latents stay close to the clean ones.
At test time the whole pattern is blended with the stronger ``test_alpha``.  The paper's
defaults: 16 pieces, half masked, α 0.15 for training and 0.2 at test, covers = poisons (0.3 %
each on CIFAR-10).  The paper blends a fixed image (Hello Kitty); here the pattern is seeded
uniform noise, as for ``blend``, so nothing is downloaded.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

from bdray.attacks import triggers as T
from bdray.attacks.specs import ATTACKS, AttackParams, Trigger
from bdray.config import ConfigError, check_number, check_positive_int


def piece_masks(n: int, height: int, width: int, pieces: int, masked: int, generator: torch.Generator) -> torch.Tensor:
    """N×1×H×W masks: 1 on the kept cells of a √pieces × √pieces grid, 0 on ``masked`` random
    cells per image (cell edges at i·H // g, so any side works)."""
    grid = int(round(math.sqrt(pieces)))
    scores = torch.rand(n, pieces, generator=generator)
    dropped = torch.zeros(n, pieces, dtype=torch.bool)
    if masked > 0:
        dropped.scatter_(1, scores.topk(masked, dim=1).indices, True)
    rows = torch.arange(height) * grid // height  # the grid row of each pixel row
    cols = torch.arange(width) * grid // width
    cell = rows[:, None] * grid + cols[None, :]  # H×W cell index
    return (~dropped[:, cell]).float().unsqueeze(1)


def masked_blend(images: torch.Tensor, pattern: torch.Tensor, alpha: float, masks: torch.Tensor) -> torch.Tensor:
    """x + α·mask·(pattern − x): the blend only where the mask is 1."""
    p = pattern.to(images.device, images.dtype)
    return images + alpha * masks.to(images.device, images.dtype) * (p - images)


class AdaptiveBlendTrigger(Trigger):
    name = "adaptive_blend"

    def __init__(self, pattern: torch.Tensor, pieces: int, masked: int, train_alpha: float, test_alpha: float,
                 cover_ratio: float):
        self.pattern, self.pieces, self.masked = pattern, pieces, masked
        self.train_alpha, self.test_alpha = train_alpha, test_alpha
        self.cross_ratio = cover_ratio  # poison_split adds this many covers (true label kept) per poisoned sample

    def apply(self, images):
        return T.blend(images, self.pattern, self.test_alpha)

    def partial(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        masks = piece_masks(len(images), images.shape[-2], images.shape[-1], self.pieces, self.masked, generator)
        return masked_blend(images, self.pattern, self.train_alpha, masks)

    def poison(self, images, labels, generator: Optional[torch.Generator] = None):
        return self.partial(images, generator if generator is not None else torch.Generator().manual_seed(0))

    def apply_noise(self, images, generator: torch.Generator):
        return self.partial(images, generator)


@ATTACKS.register("adaptive_blend")
@dataclasses.dataclass
class AdaptiveBlendParams(AttackParams):
    """Adaptive-Blend: partial blends on poisoned and cover samples, the full blend at test time."""

    pieces: int = 16
    mask_rate: float = 0.5
    train_alpha: float = 0.15
    test_alpha: float = 0.2
    cover_ratio: float = 1.0   # cover samples per poisoned sample (the paper: cover rate = poison rate)
    pattern_seed: int = 0

    def validate(self):
        check_positive_int("pieces", self.pieces)
        if round(math.sqrt(self.pieces)) ** 2 != self.pieces:
            raise ConfigError("pieces", self.pieces, "a perfect square (the pattern is cut into a √pieces grid)")
        check_number("mask_rate", self.mask_rate, low=0.0, high=1.0, high_open=True)
        check_number("train_alpha", self.train_alpha, low=0.0, high=1.0, low_open=True)
        check_number("test_alpha", self.test_alpha, low=0.0, high=1.0, low_open=True)
        check_number("cover_ratio", self.cover_ratio, low=0.0)
        check_number("pattern_seed", self.pattern_seed, low=0, integer=True)

    def check_fits(self, image_shape):
        side = min(image_shape[1:])
        grid = int(round(math.sqrt(self.pieces)))
        if grid > side:
            raise ConfigError("pieces", self.pieces, f"at most {side ** 2} pieces: a grid of at most {side}×{side} "
                                                     f"cells on the {image_shape[1]}×{image_shape[2]} image")

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        self.check_fits(image_shape)
        masked = int(round(self.mask_rate * self.pieces))
        return AdaptiveBlendTrigger(T.make_noise_pattern(image_shape, self.pattern_seed), self.pieces, masked,
                                    self.train_alpha, self.test_alpha, self.cover_ratio)
