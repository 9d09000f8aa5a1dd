"""``ibau``: Implicit Backdoor Adversarial Unlearning (Zeng, Chen, Park, Mao, Jin & Jia,
"Adversarial Unlearning of Backdoors via Implicit Hypergradient", ICLR 2022; docs/methods.md).

The backdoor is treated as the worst universal perturbation δ of the defender's clean images, and
the model is unlearned against it by a minimax problem:

    min_θ  H(δ*(θ), θ) = E CE(f(x + δ*(θ); θ), y),     δ*(θ) = argmin_δ  −E CE(f(x + δ; θ), y) + c‖δ‖²

Each round (one evaluated, checkpointed epoch on the engine):
1. **inner maximum** -- δ (one image's shape, from zero) by SGD with lr ``perturbation_lr`` over one
   pass of the clean batches, raising the cross-entropy against the model's own predictions, then
   clipped to the ℓ2 ball of radius ``perturbation_rms · √(C·H·W)``;
2. **outer steps** -- one Adam step on θ per clean batch with the *implicit hypergradient*: with
   the inner solver's fixed-point map Φ(δ, θ) = δ − η ∇_δ L_inner(δ, θ) (one gradient step of
   size η on the inner loss, evaluated on the subset's first batch), the hypergradient is

       ∂H/∂θ + (∂Φ/∂θ)ᵀ v,      v = (∂Φ/∂δ)ᵀ v + ∂H/∂δ     (``fixed_point_steps`` iterations from v = 0)

   which the engine applies as the gradient of the surrogate ``H + ⟨Φ(δ, θ), v⟩`` (v, δ held fixed).

Defaults from the authors' code (defense.py and the CIFAR notebook): 5 rounds, K = 5 fixed-point
steps, η 0.1, c = 0.001, δ's SGD lr 10, Adam lr 0.001, batch 100, the model in eval mode, and the
perturbation added to ``perturbed_fraction`` = 1 % of each outer batch (the paper's H adds it to
every image: ``perturbed_fraction`` 1.0).  The authors unlearn on 5,000 clean CIFAR-10 test images
(50 batches a round); here the defender's clean share of the training set (``clean_fraction``, 5 %)
is repeated up to ``samples_per_round`` = 5,000, so every dataset gets the paper's 50 outer steps
per round.  The ℓ2 radius 10 of the CIFAR notebook is ``perturbation_rms`` 0.18 (10 / √3072) of
an image's RMS, so a smaller image gets a proportionally smaller ball; images are clamped to
[0, 1] as in the notebook.  At least one image of each outer batch is perturbed (the authors'
``int(0.01 · 100)`` is one).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from bdray.config import ConfigError, check_number, check_positive, check_positive_int
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.clean_data import check_clean_data_fields, defended_metrics, start_purification
from bdray.train import Batch, EpochInfo, Phase, TrainSettings, Update
from bdray.train.batches import gather, repeated
from bdray.train.context import RunContext, unwrap


@dataclasses.dataclass
class IBAUConfig(TrainSettings):
    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    clean_fraction: float = 0.05      # share of the training set the defender holds clean
    subset_seed: int = 0
    rounds: int = 5                   # minimax rounds (each: a new δ, then the outer steps)
    samples_per_round: int = 5000     # outer-step images per round (the clean share repeated)
    batch_size: int = 100
    lr: float = 0.001                 # Adam on θ (the outer problem)
    fixed_point_steps: int = 5        # K: iterations of the implicit hypergradient's fixed point
    inner_step: float = 0.1           # η of the fixed-point map Φ(δ, θ) = δ − η ∇_δ L_inner
    perturbation_lr: float = 10.0     # SGD lr of the inner maximum over δ
    perturbation_l2: float = 0.001    # c: the ‖δ‖² penalty of the inner problem
    perturbation_rms: float = 0.18    # ℓ2 radius of δ per √(pixel count): 10 / √3072 on CIFAR-10
    perturbed_fraction: float = 0.01  # share of each outer batch δ is added to (at least one image)

    def validate(self) -> None:
        super().validate()
        check_clean_data_fields(self)
        for name in ("rounds", "samples_per_round", "fixed_point_steps"):
            check_positive_int(name, getattr(self, name))
        for name in ("lr", "inner_step", "perturbation_lr", "perturbation_rms"):
            check_positive(name, getattr(self, name))
        check_number("perturbation_l2", self.perturbation_l2, low=0.0)
        check_number("perturbed_fraction", self.perturbed_fraction, low=0.0, high=1.0, low_open=True)
        if self.compile:
            raise ConfigError("compile", self.compile, "False (I-BAU's hypergradient differentiates through the "
                                                       "model twice, which torch.compile does not support)")


def clamp01(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0)


def universal_perturbation(model: nn.Module, batches: List[torch.Tensor], lr: float, l2: float,
                           radius: float) -> torch.Tensor:
    """I-BAU's inner maximum: one image-shaped δ from zero, one SGD step per batch on
    ``−CE(f(x + δ), f(x)'s prediction) + l2 · ‖δ‖²``, then clipped to the ℓ2 ball of ``radius``."""
    delta = torch.zeros_like(batches[0][:1], requires_grad=True)
    opt = torch.optim.SGD([delta], lr=lr)
    for x in batches:
        with torch.no_grad():
            predicted = model(x).argmax(1)
        loss = -F.cross_entropy(model(clamp01(x + delta)), predicted) + l2 * delta.pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    delta = delta.detach()
    return delta * min(1.0, radius / max(float(delta.norm()), 1e-12))


def implicit_hypergradient_loss(model: nn.Module, delta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                                perturbed: torch.Tensor, inner_x: torch.Tensor, inner_y: torch.Tensor,
                                inner_step: float, l2: float, steps: int) -> Dict[str, torch.Tensor]:
    """The outer loss H on the batch (δ added to the images ``perturbed`` marks) and the surrogate
    ``H + ⟨Φ(δ, θ), v⟩`` whose θ-gradient is I-BAU's implicit hypergradient (see the module text).
    The fixed point for v runs K vector-Jacobian products of Φ with respect to δ."""
    delta = delta.detach().requires_grad_(True)
    mask = perturbed.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    outer = F.cross_entropy(model(clamp01(x + mask * delta)), y)
    d_outer_d_delta, = torch.autograd.grad(outer, delta, retain_graph=True)

    inner = -F.cross_entropy(model(clamp01(inner_x + delta)), inner_y) + l2 * delta.pow(2).sum()
    d_inner_d_delta, = torch.autograd.grad(inner, delta, create_graph=True)
    mapped = delta - inner_step * d_inner_d_delta          # Φ(δ, θ), differentiable in θ and δ
    v = torch.zeros_like(delta)
    for _ in range(steps):
        jvp, = torch.autograd.grad(mapped, delta, grad_outputs=v, retain_graph=True)
        v = jvp + d_outer_d_delta
    surrogate = outer + (mapped * v.detach()).sum()
    return {"surrogate": surrogate, "outer": outer.detach(), "v_norm": v.detach().norm()}


def train_ibau(cfg: IBAUConfig, ctx: RunContext) -> Dict[str, Any]:
    if ctx.world_size > 1:
        raise ConfigError("num_workers", ctx.world_size, "1 (I-BAU differentiates through the model twice, "
                                                         "which DistributedDataParallel does not support)")
    threat, subset, engine, model = start_purification(cfg, ctx, "ibau")
    opt = engine.optimizer("optimizer", torch.optim.Adam(model.parameters(), lr=cfg.lr))
    net = unwrap(model)
    radius = cfg.perturbation_rms * math.sqrt(subset.images[0].numel())
    # the inner loss's batch: the subset's first batch, as the authors' images_list[0] (not augmented:
    # the generator is not drawn from)
    first = torch.arange(min(cfg.batch_size, len(subset)), device=subset.images.device)
    inner = gather(subset, first, torch.Generator(), 0, False, augmented=False)
    round_state: Dict[str, Any] = {}
    outer_batches = repeated(subset, cfg.samples_per_round, cfg.batch_size, crop_padding=0, hflip=False)

    def batches(gen: torch.Generator):
        """The round: the inner maximum over one pass of the clean subset, then its outer batches."""
        net.eval()  # the authors unlearn in eval mode (BatchNorm statistics and dropout fixed)
        passes = [gather(subset, idx, gen, 0, False, augmented=False).x
                  for idx in torch.randperm(len(subset), generator=gen).to(subset.images.device).split(cfg.batch_size)]
        round_state["delta"] = universal_perturbation(net, passes, cfg.perturbation_lr, cfg.perturbation_l2, radius)
        round_state["delta_norm"] = round_state["delta"].norm()
        round_state["gen"] = gen
        yield from outer_batches(gen)

    def loss(batch: Batch):
        n = len(batch.y)
        k = max(1, int(n * cfg.perturbed_fraction))
        chosen = torch.zeros(n, dtype=torch.bool)
        chosen[torch.randperm(n, generator=round_state["gen"])[:k]] = True
        out = implicit_hypergradient_loss(net, round_state["delta"], batch.x, batch.y, chosen.to(batch.x.device),
                                          inner.x, inner.y, cfg.inner_step, cfg.perturbation_l2,
                                          cfg.fixed_point_steps)
        return out["surrogate"], {"outer_loss": out["outer"], "hypergradient_v_norm": out["v_norm"],
                                  "perturbation_norm": round_state["delta_norm"]}

    def evaluate(_info: EpochInfo) -> Dict[str, Any]:
        return defended_metrics(net, threat, len(subset))

    update = Update(opt, batches, loss, name=None)
    metrics = engine.run([Phase("unlearn", cfg.rounds, [update], evaluate)])
    return {**metrics, "model": net}
