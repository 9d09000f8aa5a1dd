"""``bpp``: BppAttack (Wang, Zhai & Ma, CVPR 2022; docs/methods.md).

The trigger is image quantisation: every pixel of every channel reduced to ``squeeze_num`` evenly
spaced levels, optionally with Floyd–Steinberg dithering (the quantisation error of each pixel
pushed to its right and lower neighbours: 7/16, 3/16, 5/16, 1/16), so nothing is pasted and the
change is hard to see.  Dirty label.  The paper's contrastive adversarial training adds
"negative" samples that keep their true label: a clean image plus the quantisation residual
(Q(x') − x') of another image, so the model learns the quantisation itself, not any small
perturbation; ``negative_ratio`` of them per poisoned sample (the authors' code: injection rate
0.2 and negative rate 0.2 per batch, i.e. one per poisoned sample).  The authors' code draws the
negatives per batch during training; here they are drawn once, when the training set is poisoned
(as WaNet's noise samples are).
"""
from __future__ import annotations

import dataclasses

import torch

from bdray.attacks.specs import ATTACKS, AttackParams, Trigger
from bdray.config import ConfigError, check_number


def quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Each value of a [0, 1] batch rounded to the nearest of ``levels`` evenly spaced levels."""
    return torch.round(images * (levels - 1)) / (levels - 1)


def floyd_steinberg(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Quantisation to ``levels`` with Floyd–Steinberg error diffusion, in raster order, batched
    over images and channels (one pass over the H×W pixels)."""
    work = images.clone()
    h, w = work.shape[-2:]
    for y in range(h):
        for x in range(w):
            old = work[:, :, y, x]
            new = quantize(old, levels).clamp(0.0, 1.0)
            error = old - new
            work[:, :, y, x] = new
            if x + 1 < w:
                work[:, :, y, x + 1] += error * (7 / 16)
            if y + 1 < h:
                if x > 0:
                    work[:, :, y + 1, x - 1] += error * (3 / 16)
                work[:, :, y + 1, x] += error * (5 / 16)
                if x + 1 < w:
                    work[:, :, y + 1, x + 1] += error * (1 / 16)
    return work.clamp(0.0, 1.0)


def reduce_bit_depth(images: torch.Tensor, levels: int, dithering: bool) -> torch.Tensor:
    return floyd_steinberg(images, levels) if dithering else quantize(images, levels)


class BppTrigger(Trigger):
    name = "bpp"

    def __init__(self, levels: int, dithering: bool, negative_ratio: float):
        self.levels, self.dithering = levels, dithering
        self.cross_ratio = negative_ratio  # poison_split adds this many negatives per poisoned sample

    def apply(self, images):
        return reduce_bit_depth(images, self.levels, self.dithering)

    def apply_noise(self, images, generator: torch.Generator):
        """Negatives: each image plus the quantisation residual of another image of the batch."""
        if len(images) < 2:
            return images
        shift = int(torch.randint(1, len(images), (1,), generator=generator))
        others = images.roll(shift, dims=0)  # a different image for every position
        residual = self.apply(others) - others
        return (images + residual).clamp(0.0, 1.0)


@ATTACKS.register("bpp")
@dataclasses.dataclass
class BppParams(AttackParams):
    """BppAttack: bit-depth reduction (with dithering) as the trigger, plus negative samples."""

    squeeze_num: int = 8          # quantisation levels per channel (the authors' default: 8 = 3 bits)
    dithering: bool = True        # the paper's trigger; the authors' config defaults to False
    negative_ratio: float = 1.0   # negatives (true label kept) per poisoned sample; 0: none

    def validate(self):
        check_number("squeeze_num", self.squeeze_num, low=2, high=255, integer=True)
        if not isinstance(self.dithering, bool):
            raise ConfigError("dithering", self.dithering, "true or false")
        check_number("negative_ratio", self.negative_ratio, low=0.0)

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        return BppTrigger(self.squeeze_num, self.dithering, self.negative_ratio)
