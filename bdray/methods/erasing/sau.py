"""``sau``: Shared Adversarial Unlearning (Wei, Zhang, Zha & Wu, "Shared Adversarial Unlearning:
Backdoor Mitigation by Unlearning Shared Adversarial Examples", NeurIPS 2023; docs/methods.md).

The backdoor risk of the model being purified, h_θ, is bounded by its adversarial risk on the
*shared* adversarial examples: perturbations that fool both h_θ and the fixed backdoored model
h_bd to the same label (a trigger is one of them).  SAU alternates, on each clean batch:

1. **shared PGD** (the inner maximum) -- a per-image ℓ∞ perturbation δ (bound ``perturbation_bound``
   on pixels in [0, 1], started at the bound: the authors' ``max`` init) by ``pgd_steps`` signed
   steps of size ``pgd_step`` descending
   ``beta_adv · L_adv + beta_shared · L_share``:  L_adv = −½ (CE of h_θ on the images it is not yet
   fooled on + CE of h_bd on those it is not yet fooled on) / n  (fool each model),  L_share = Σ of
   the Jensen–Shannon divergence between the two models' predictions on the images that are not
   yet shared adversarial examples / n  (fool them alike).  PGD stops once every image of the batch
   is a shared one (as the authors' ``break``, without a host sync: later steps are masked out);
2. **unlearning** (the outer minimum, one Adam step on θ) --
   ``lambda_clean · CE(h_θ(x), y) + lambda_adv · CE(h_θ(x + δ), y) + lambda_shared · L_sar``, where
   L_sar = Σ over the *potential poisons* (h_bd's perturbed prediction is neither y nor its clean
   prediction) of −log(1 − p_θ(ŷ_bd | x + δ)) / n: h_θ is pushed off the label h_bd was fooled to.

Defaults from the authors' BackdoorBench code and config (defense/sau.py, config/defense/sau):
5 % clean data, 100 rounds (one pass each), batch 256, Adam lr 1e-4 (their cosine scheduler is
created but never stepped, so the lr is constant), the model in eval mode throughout (``train_mode``
off: BatchNorm statistics fixed), PGD 5 steps, bound and step 0.2, β1 0.01, β2 1, λ1 1, λ3 1 --
and, from the paper's text ("λ1 = λ2 = λ4 = 1 and λ3 = 0.01" in its notation, where its λ3 is our
β1 and its λ4 our λ3), **λ2 = 1**: adversarial training on the shared adversarial examples is on.
The code's config has λ2 = 0 ("AT is not used"); with it the backdoor came back over the rounds on
every seed of both datasets here (benchmarks/RESULTS.md, "SAU"), with λ2 = 1 it did not.  The
perturbed images are not clipped to [0, 1] (the authors' choice).  One round is the authors' epoch, a pass over 5 % of CIFAR-10's 50,000 = 2,500 images:
here the defender's clean share is repeated up to ``samples_per_round`` = 2,500, so every dataset
gets their 10 steps per round.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bdray.config import check_choice, check_non_negative, check_positive, check_positive_int
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.clean_data import check_clean_data_fields, defended_metrics, start_purification
from bdray.train import Batch, EpochInfo, Phase, TrainSettings, Update
from bdray.train.batches import repeated
from bdray.train.context import RunContext, unwrap

PGD_INITS = ("max", "min", "zero", "random")


@dataclasses.dataclass
class SAUConfig(TrainSettings):
    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    clean_fraction: float = 0.05      # share of the training set the defender holds clean (the paper: 5 %)
    subset_seed: int = 0
    rounds: int = 100                 # unlearning rounds (the authors' epochs)
    samples_per_round: int = 2500     # images per round (the clean share repeated): 5 % of CIFAR-10
    batch_size: int = 256
    lr: float = 1e-4                  # Adam on θ, constant
    perturbation_bound: float = 0.2   # ℓ∞ bound of δ on pixels in [0, 1]
    pgd_step: float = 0.2
    pgd_steps: int = 5
    pgd_init: str = "max"
    beta_adv: float = 0.01            # β1: fool each model
    beta_shared: float = 1.0          # β2: fool both alike (JS divergence)
    lambda_clean: float = 1.0         # λ1: clean cross-entropy
    lambda_adv: float = 1.0           # λ2: adversarial training on δ (the paper's 1; the code's config: 0)
    lambda_shared: float = 1.0        # λ3: shared adversarial risk L_sar

    def validate(self) -> None:
        super().validate()
        check_clean_data_fields(self)
        for name in ("rounds", "samples_per_round", "pgd_steps"):
            check_positive_int(name, getattr(self, name))
        for name in ("lr", "perturbation_bound", "pgd_step"):
            check_positive(name, getattr(self, name))
        for name in ("beta_adv", "beta_shared", "lambda_clean", "lambda_adv", "lambda_shared"):
            check_non_negative(name, getattr(self, name))
        check_choice("pgd_init", self.pgd_init, PGD_INITS)


def initial_perturbation(x: torch.Tensor, bound: float, init: str,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """δ's start: every pixel at +bound (``max``), −bound (``min``), 0, or uniform in [−bound, bound]."""
    if init == "max":
        return torch.full_like(x, bound)
    if init == "min":
        return torch.full_like(x, -bound)
    if init == "zero":
        return torch.zeros_like(x)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) if generator is not None else torch.rand_like(x)
    return (noise.to(x.device) * 2 - 1) * bound


def js_divergence(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Per-sample Jensen–Shannon divergence between two softmax predictions (probabilities floored
    at 1e-8, as the authors do)."""
    p = F.softmax(logits_a, dim=1).clamp(min=1e-8)
    q = F.softmax(logits_b, dim=1).clamp(min=1e-8)
    log_mix = (0.5 * (p + q)).log()
    return 0.5 * ((p * (p.log() - log_mix)).sum(1) + (q * (q.log() - log_mix)).sum(1))


def shared_adversarial_perturbation(model: nn.Module, reference: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                                    bound: float, step: float, steps: int, init: str = "max",
                                    beta_adv: float = 0.01, beta_shared: float = 1.0,
                                    generator: Optional[torch.Generator] = None,
                                    ref_clean_pred: Optional[torch.Tensor] = None
                                    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """SAU's shared PGD (the module text, step 1): a per-image δ with ‖δ‖∞ ≤ ``bound`` that fools
    ``model`` and ``reference`` to the same label.  Only δ is differentiated (the models' parameter
    gradients are untouched; ``ref_clean_pred``: the reference's clean predictions, when the
    caller has them).  Returns δ and, from the last step taken, the share of images that
    fool ``model`` and that are shared adversarial examples (device tensors)."""
    with torch.no_grad():
        clean_pred = model(x).argmax(1)
        if ref_clean_pred is None:
            ref_clean_pred = reference(x).argmax(1)
    n = x.shape[0]
    delta = initial_perturbation(x, bound, init, generator)
    done = torch.zeros((), dtype=torch.bool, device=x.device)
    fooled_share = shared_share = torch.zeros((), device=x.device)
    for _ in range(steps):
        delta.requires_grad_(True)
        logits, ref_logits = model(x + delta), reference(x + delta)
        pred, ref_pred = logits.argmax(1), ref_logits.argmax(1)
        fooled, ref_fooled = pred != clean_pred, ref_pred != ref_clean_pred
        shared = fooled & ref_fooled & (pred == ref_pred)
        ce = F.cross_entropy(logits, y, reduction="none")
        ref_ce = F.cross_entropy(ref_logits, y, reduction="none")
        loss_adv = -((ce * (~fooled)).sum() + (ref_ce * (~ref_fooled)).sum()) / (2 * n)
        loss_share = (js_divergence(logits, ref_logits) * (~shared)).sum() / n
        grad, = torch.autograd.grad(beta_adv * loss_adv + beta_shared * loss_share, delta)
        stepped = (delta - step * grad.sign()).clamp(-bound, bound)
        delta = torch.where(done, delta, stepped).detach()
        fooled_share = torch.where(done, fooled_share, fooled.float().mean())
        shared_share = torch.where(done, shared_share, shared.float().mean())
        done = done | shared.all()
    return delta, {"pgd_fooled_share": fooled_share, "pgd_shared_share": shared_share}


def shared_adversarial_risk(adv_logits: torch.Tensor, ref_adv_pred: torch.Tensor,
                            potential_poison: torch.Tensor) -> torch.Tensor:
    """L_sar: the mean over the batch of −log(1 − p(ŷ_bd | x + δ)) on the potential poisons, the
    probability of the reference's label clamped to [0.001, 0.999] and the term computed both as
    1 − p and as the other classes' sum, averaged (as the authors do, for numerical safety)."""
    p = F.softmax(adv_logits, dim=1)
    pos = p.gather(1, ref_adv_pred[:, None]).squeeze(1)
    neg = p.sum(1) - pos
    per_sample = -(torch.log(1e-6 + neg.clamp(max=0.999)) + torch.log(1 + 1e-6 - pos.clamp(min=0.001))) / 2
    return (per_sample * potential_poison).sum() / adv_logits.shape[0]


def sau_loss(model, reference: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
             ref_clean_pred: torch.Tensor, cfg: SAUConfig) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The outer loss (the module text, step 2) on a batch, its perturbation and the reference's
    clean predictions."""
    n = x.shape[0]
    logits, adv_logits = model(torch.cat([x, x + delta])).split(n)
    with torch.no_grad():
        ref_adv_pred = reference(x + delta).argmax(1)
    potential_poison = (ref_adv_pred != y) & (ref_adv_pred != ref_clean_pred)
    loss_clean = F.cross_entropy(logits, y)
    loss_adv = F.cross_entropy(adv_logits, y)
    loss_shared = shared_adversarial_risk(adv_logits, ref_adv_pred, potential_poison)
    loss = cfg.lambda_clean * loss_clean + cfg.lambda_adv * loss_adv + cfg.lambda_shared * loss_shared
    return loss, {"clean_loss": loss_clean.detach(), "shared_risk_loss": loss_shared.detach(),
                  "potential_poison_share": potential_poison.float().mean()}


def train_sau(cfg: SAUConfig, ctx: RunContext) -> Dict[str, Any]:
    threat, subset, engine, model = start_purification(cfg, ctx, "sau")
    opt = engine.optimizer("optimizer", torch.optim.Adam(model.parameters(), lr=cfg.lr))
    forward = engine.caller(model)
    net = unwrap(model)
    reference = copy.deepcopy(threat.model).to(ctx.device).eval().requires_grad_(False)  # h_bd, fixed
    batches_of = repeated(subset, cfg.samples_per_round, cfg.batch_size, crop_padding=0, hflip=False)
    round_state: Dict[str, Any] = {}

    def batches(gen: torch.Generator):
        net.eval()  # the authors' train_mode off: BatchNorm statistics and dropout stay fixed
        round_state["gen"] = gen
        yield from batches_of(gen)

    def loss(batch: Batch):
        with torch.no_grad():
            ref_clean_pred = reference(batch.x).argmax(1)  # once per batch: PGD and the outer loss share it
        delta, pgd = shared_adversarial_perturbation(
            net, reference, batch.x, batch.y, bound=cfg.perturbation_bound, step=cfg.pgd_step,
            steps=cfg.pgd_steps, init=cfg.pgd_init, beta_adv=cfg.beta_adv, beta_shared=cfg.beta_shared,
            generator=round_state["gen"] if cfg.pgd_init == "random" else None, ref_clean_pred=ref_clean_pred)
        value, parts = sau_loss(forward, reference, batch.x, batch.y, delta, ref_clean_pred, cfg)
        return value, {**parts, **pgd}

    def evaluate(_info: EpochInfo) -> Dict[str, Any]:
        return defended_metrics(net, threat, len(subset))

    update = Update(opt, batches, loss)
    metrics = engine.run([Phase("unlearn", cfg.rounds, [update], evaluate)])
    return {**metrics, "model": net}
