"""``refool``: Reflection backdoor (Liu et al., "Reflection Backdoor", ECCV 2020; docs/methods.md).

The trigger is a reflection: another image seen faintly through the photo, as on a window.
Clean label (the paper's setting): target-class training images get a reflection, labels kept; at
test time any image with a reflection should go to the target.  Each reflection is made in linear
light (γ = 2.2) by one of the paper's two models -- a *ghost* (the reflection plus a shifted,
attenuated copy of itself) or an *out-of-focus* reflection (Gaussian-blurred) -- and mixed with
the image at a background weight ``α_b`` drawn from [0.55, 0.95] (BackdoorBox: 1 − U(0.05, 0.45)).

The paper draws reflections from PascalVOC and keeps the most effective ones after a few rounds of
training; here ``num_reflections`` are drawn from the dataset's own training images (so nothing is
downloaded) and none are selected.  Each candidate's reflection layer (ghost or blur, offset,
σ, α_b) is drawn once when the trigger is built and stored with the attack artifact; an image
gets the candidate picked by its own pixel content, so ``apply`` is a pure function of the batch.
"""
from __future__ import annotations

import dataclasses
from typing import List

import torch

from bdray.attacks.low_frequency import gaussian_blur
from bdray.attacks.specs import ATTACKS, AttackParams, Trigger
from bdray.config import ConfigError, check_number, check_positive_int

GAMMA = 2.2


def ghost_layer(reflection: torch.Tensor, dy: int, dx: int, ghost_alpha: float) -> torch.Tensor:
    """A ghost reflection in linear light: the image plus a copy shifted by (dy, dx), weighted
    ``ghost_alpha`` and ``1 − ghost_alpha`` (zero where the shift moves outside)."""
    shifted = torch.zeros_like(reflection)
    h, w = reflection.shape[-2:]
    shifted[..., dy:, dx:] = reflection[..., :h - dy, :w - dx]
    return ghost_alpha * reflection + (1 - ghost_alpha) * shifted


def reflection_layers(candidates: torch.Tensor, ghost_rate: float, generator: torch.Generator):
    """(K×C×H×W reflection layers in linear light, K background weights α_b) for K candidate images."""
    k, _, h, w = candidates.shape
    linear = candidates.clamp(0, 1) ** GAMMA
    layers: List[torch.Tensor] = []
    alpha_b = 1.0 - (0.05 + 0.4 * torch.rand(k, generator=generator))
    side = min(h, w)
    for i in range(k):
        if float(torch.rand(1, generator=generator)) < ghost_rate:
            # offsets of 3–8 px on the paper's images; scaled to the side (at least 1 px)
            low, high = max(1, round(3 * side / 32)), max(1, round(8 * side / 32))
            dy, dx = (int(torch.randint(low, high + 1, (1,), generator=generator)) for _ in range(2))
            ghost_alpha = 0.15 + 0.35 * float(torch.rand(1, generator=generator))
            layers.append(ghost_layer(linear[i], min(dy, h - 1), min(dx, w - 1), ghost_alpha))
        else:
            sigma = (1 + 4 * float(torch.rand(1, generator=generator))) * side / 32
            layers.append(gaussian_blur(linear[i:i + 1], sigma)[0])
    return torch.stack(layers), alpha_b


def add_reflections(images: torch.Tensor, layers: torch.Tensor, alpha_b: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Mix image n with reflection layer ``which[n]`` in linear light:
    x' = (α_b·x^γ + (1 − α_b)·r)^(1/γ)."""
    which = which.to(images.device)
    a = alpha_b.to(images.device, images.dtype)[which].view(-1, 1, 1, 1)
    r = layers.to(images.device, images.dtype)[which]
    return (a * images.clamp(0, 1) ** GAMMA + (1 - a) * r).clamp(0, 1) ** (1 / GAMMA)


def content_index(images: torch.Tensor, k: int) -> torch.Tensor:
    """A candidate index per image from its own pixels (the same image always gets the same one)."""
    return (torch.round(images * 255).long().sum(dim=(1, 2, 3)) % k).long()


class RefoolTrigger(Trigger):
    name = "refool"
    clean_label = True

    def __init__(self, layers: torch.Tensor, alpha_b: torch.Tensor):
        self.layers, self.alpha_b = layers, alpha_b

    def apply(self, images):
        return add_reflections(images, self.layers, self.alpha_b, content_index(images, len(self.layers)))

    def state(self):
        return {"layers": self.layers.detach().cpu(), "alpha_b": self.alpha_b.detach().cpu()}


@ATTACKS.register("refool")
@dataclasses.dataclass
class RefoolParams(AttackParams):
    """Refool: reflections of other training images (clean label by default)."""

    needs_images = True
    num_reflections: int = 16   # candidate reflection images drawn from the training split
    ghost_rate: float = 0.49    # share of candidates made ghosts (the rest out-of-focus); BackdoorBox's 0.49
    reflection_seed: int = 0

    def validate(self):
        check_positive_int("num_reflections", self.num_reflections)
        check_number("ghost_rate", self.ghost_rate, low=0.0, high=1.0)
        check_number("reflection_seed", self.reflection_seed, low=0, integer=True)

    def build(self, image_shape, seed, *, surrogate=None, state=None, images=None):
        if state and "layers" in state:
            return RefoolTrigger(state["layers"], state["alpha_b"])
        if images is None:
            raise ConfigError("attack", "refool", "a trigger built with the training images (images=) or its stored state")
        pool = images()
        gen = torch.Generator().manual_seed(self.reflection_seed)
        if self.num_reflections > len(pool):
            raise ConfigError("num_reflections", self.num_reflections, f"at most the {len(pool)} training images")
        chosen = torch.randperm(len(pool), generator=gen)[:self.num_reflections]
        layers, alpha_b = reflection_layers(pool[chosen.to(pool.device)].cpu(), self.ghost_rate, gen)
        return RefoolTrigger(layers, alpha_b)
