"""``lf``: the Low Frequency attack (Zeng et al., "Rethinking the backdoor attacks' triggers: a
frequency perspective", ICCV 2021; docs/methods.md).

The trigger is one additive perturbation ``v`` (C×H×W) with no high-frequency content: a
universal adversarial perturbation towards the target class, found on a clean surrogate model,
low-pass filtered by a Gaussian after every update and rescaled to a fixed peak-to-peak
``amplitude`` (the authors' code: σ = 6 px on 32 px images, range 0.2).  Poisoning is dirty-label:
``x' = clip(x + v)`` relabelled to the target.  The authors grow ``v`` with targeted DeepFool
steps per image; here each update is a gradient step on the batch's target-class cross-entropy
(same objective, batched), and the target is the configured class, not the surrogate's dominant
one.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from bdray.attacks.specs import ATTACKS, AttackParams, Trigger
from bdray.config import check_number, check_positive, check_positive_int


def gaussian_kernel1d(sigma: float, radius: int) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian low-pass of a float N×C×H×W batch (σ in pixels, zero padding as the
    authors' filter; radius 2σ, at most the image side)."""
    if sigma <= 0:
        return images
    c, h, w = images.shape[1:]
    radius = max(1, min(int(math.ceil(2 * sigma)), min(h, w) - 1))
    k = gaussian_kernel1d(sigma, radius).to(images.device, images.dtype)
    out = F.conv2d(images, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


def rescale_range(v: torch.Tensor, amplitude: float) -> torch.Tensor:
    """``v`` shifted and scaled to [0, amplitude] (the authors' normalisation after each step)."""
    span = (v.max() - v.min()).clamp_min(1e-12)
    return (v - v.min()) / span * amplitude


def add_perturbation(images: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (images + v.to(images.device, images.dtype)).clamp(0.0, 1.0)


def optimise_smooth_perturbation(model, images: torch.Tensor, target_class: int, sigma: float, amplitude: float,
                                 steps: int, step_lr: float, seed: int, batch_size: int = 256) -> torch.Tensor:
    """A smooth universal perturbation (C×H×W, in [0, amplitude]) that pushes ``images`` towards
    ``target_class`` on ``model``: signed gradient steps on the target's cross-entropy, each
    followed by the Gaussian low-pass and the range rescaling.  Returns the one with the highest
    fooling rate (share of the batch sent to the target) seen."""
    model = model.eval()
    gen = torch.Generator().manual_seed(seed)
    v = torch.zeros(1, *images.shape[1:], device=images.device)
    best, best_rate = v.clone(), -1.0
    for _ in range(steps):
        idx = torch.randint(0, len(images), (min(batch_size, len(images)),), generator=gen).to(images.device)
        x = images[idx]
        v = v.detach().requires_grad_(True)
        logits = model(add_perturbation(x, v))
        target = torch.full((len(x),), target_class, device=x.device, dtype=torch.long)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, target), v)
        with torch.no_grad():
            rate = float((logits.argmax(1) == target).float().mean())
            if rate > best_rate:
                best, best_rate = v.detach().clone(), rate
            v = rescale_range(gaussian_blur(v - step_lr * amplitude * grad.sign(), sigma), amplitude)
    return best[0].detach().cpu()


class LowFrequencyTrigger(Trigger):
    name = "lf"

    def __init__(self, perturbation: torch.Tensor):
        self.perturbation = perturbation

    def apply(self, images):
        return add_perturbation(images, self.perturbation)

    def state(self):
        return {"perturbation": self.perturbation.detach().cpu()}


@ATTACKS.register("lf")
@dataclasses.dataclass
class LowFrequencyParams(AttackParams):
    """Low Frequency: a smooth universal perturbation towards the target (dirty label)."""

    needs_surrogate = True
    sigma_fraction: float = 6 / 32   # Gaussian σ as a share of the image side (the authors: 6 px of 32)
    amplitude: float = 0.2           # peak-to-peak range of the perturbation in pixel units
    steps: int = 200
    step_lr: float = 0.1             # step size as a share of the amplitude
    target_class: int = 0            # the sweep sets it to the attack's target

    def validate(self):
        check_number("sigma_fraction", self.sigma_fraction, low=0.0, high=1.0)
        check_number("amplitude", self.amplitude, low=0.0, high=1.0, low_open=True)
        check_positive_int("steps", self.steps)
        check_positive("step_lr", self.step_lr)
        check_number("target_class", self.target_class, low=0, integer=True)

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        if state and "perturbation" in state:
            return LowFrequencyTrigger(state["perturbation"])
        model, images = surrogate()
        sigma = self.sigma_fraction * min(image_shape[1:])
        return LowFrequencyTrigger(optimise_smooth_perturbation(model, images, self.target_class, sigma,
                                                                self.amplitude, self.steps, self.step_lr, seed))
