"""Attacks built on a surrogate model: Trojan (trojaning) triggers and clean-label poisoning."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from bdray.attacks import triggers as T
from bdray.attacks.specs import ATTACKS, AttackParams, BadNetsParams, PatchTrigger
from bdray.config import check_number, check_positive, check_positive_int


def _patch_fits(params, image_shape):
    BadNetsParams(trigger_size=params.trigger_size, location=params.location, margin=params.margin).check_fits(image_shape)


@ATTACKS.register("trojan")
@dataclasses.dataclass
class TrojanParams(AttackParams):
    """Trojaning (methods.md §2.5): choose ``num_neurons`` penultimate neurons of a clean surrogate
    model -- those with the largest weight into the target class -- and optimise a k×k patch at a
    fixed location to maximise their activation on training images; then poison with that patch
    like BadNets (dirty label)."""

    needs_surrogate = True
    trigger_size: int = 3
    location: str = "bottom_right"
    margin: int = 1
    num_neurons: int = 2
    steps: int = 200
    step_lr: float = 0.1
    target_class: int = 0  # the class whose neurons are chosen (the sweep sets it to the attack's target)

    def validate(self):
        check_positive_int("trigger_size", self.trigger_size)
        check_number("margin", self.margin, low=0, integer=True)
        check_positive_int("num_neurons", self.num_neurons)
        check_positive_int("steps", self.steps)
        check_positive("step_lr", self.step_lr)
        check_number("target_class", self.target_class, low=0, integer=True)

    def check_fits(self, image_shape):
        _patch_fits(self, image_shape)

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        self.check_fits(image_shape)
        _, h, w = image_shape
        pos = T.patch_position(h, w, self.trigger_size, self.location, self.margin)
        if state and "patch" in state:
            return PatchTrigger("trojan", state["patch"], pos, self.margin, image_shape)
        model, images = surrogate()
        patch = optimise_trojan_patch(model, images, self.trigger_size, pos, self.num_neurons, self.target_class,
                                      self.steps, self.step_lr, seed)
        return PatchTrigger("trojan", patch, pos, self.margin, image_shape)


def optimise_trojan_patch(model, images: torch.Tensor, size: int, pos, num_neurons: int, target_class: int,
                          steps: int, lr: float, seed: int, batch_size: int = 256) -> torch.Tensor:
    """A k×k patch in [0, 1] that maximises the chosen penultimate neurons on ``images`` (float N×C×H×W)."""
    model = model.eval()
    weight = model.backbone.linear.weight[target_class].detach()
    neurons = torch.topk(weight, min(num_neurons, len(weight))).indices
    gen = torch.Generator().manual_seed(seed)
    c = images.shape[1]
    logits = (torch.rand(c, size, size, generator=gen) * 2 - 1).to(images.device).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    top, left = pos
    for _ in range(steps):
        idx = torch.randint(0, len(images), (min(batch_size, len(images)),), generator=gen).to(images.device)
        x = images[idx].clone()
        x[:, :, top:top + size, left:left + size] = torch.sigmoid(logits)
        activation = model.features(x)[:, neurons].mean()
        opt.zero_grad(set_to_none=True)
        (-activation).backward()
        opt.step()
    return torch.sigmoid(logits).detach().cpu()


class CleanLabelTrigger(PatchTrigger):
    """Turner et al.: poisoned target-class images are first PGD-perturbed (L∞ ε, on a surrogate) to
    destroy their natural features, then stamped with the patch; at test time only the patch."""

    clean_label = True

    def __init__(self, patch, position, margin, image_shape, surrogate_model, epsilon, steps, step_size):
        super().__init__("clean_label", patch, position, margin, image_shape)
        self.surrogate_model, self.epsilon, self.steps, self.step_size = surrogate_model, epsilon, steps, step_size

    def poison(self, images, labels, generator=None):
        if self.surrogate_model is None:
            raise ValueError("clean-label poisoning needs the surrogate model (build with surrogate=)")
        return self.apply(pgd_away_from_label(self.surrogate_model, images, labels, self.epsilon, self.steps,
                                              self.step_size))


def pgd_away_from_label(model, images, labels, epsilon: float, steps: int, step_size: float) -> torch.Tensor:
    """L∞ PGD that maximises the cross-entropy of the true label (untargeted), from the clean image."""
    model = model.eval()
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(model(x), labels)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x + step_size * grad.sign()
            x = (images + (x - images).clamp(-epsilon, epsilon)).clamp(0, 1)
    return x.detach()


@ATTACKS.register("clean_label")
@dataclasses.dataclass
class CleanLabelParams(AttackParams):
    """Clean-label backdoor (methods.md §2.6): PGD-perturbed target-class images + BadNets patch."""

    needs_surrogate = True
    trigger_size: int = 3
    pattern: str = "checkerboard"
    location: str = "bottom_right"
    margin: int = 1
    epsilon: float = 8 / 255
    pgd_steps: int = 10
    pgd_step_size: float = 2 / 255

    def validate(self):
        check_positive_int("trigger_size", self.trigger_size)
        check_number("margin", self.margin, low=0, integer=True)
        check_number("epsilon", self.epsilon, low=0.0, high=1.0)
        check_number("pgd_steps", self.pgd_steps, low=0, integer=True)
        check_positive("pgd_step_size", self.pgd_step_size)

    def check_fits(self, image_shape):
        _patch_fits(self, image_shape)

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        base = BadNetsParams(trigger_size=self.trigger_size, pattern=self.pattern, location=self.location,
                             margin=self.margin).build(image_shape, seed)
        model = surrogate()[0] if surrogate is not None else None
        return CleanLabelTrigger(base.patch, base.position, self.margin, image_shape, model, self.epsilon,
                                 self.pgd_steps, self.pgd_step_size)
