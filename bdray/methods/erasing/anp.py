"""``anp``: Adversarial Neuron Pruning (Wu & Wang, "Adversarial Neuron Perturbations Induce Backdoor
Behaviors", NeurIPS 2021; docs/methods.md).

A backdoored network's trigger neurons are the ones whose small perturbation already makes the
network misbehave on clean images.  ANP gives every neuron (every channel of an affine BatchNorm)
a mask ``m ∈ [0, 1]`` and multiplicative perturbations of its weight and bias, ``δ, ξ ∈ [−ε, ε]``:

    BN_k(x) = γ_k (m_k + δ_k) x̂_k + β_k (1 + ξ_k)

and solves, on the defender's small clean subset,

    min_m  α · L(m, 0) + (1 − α) · max_{δ, ξ} L(m, δ, ξ)

with the inner maximum approximated by a random start in [−ε, ε] and ``pgd_steps`` signed ascent
steps of ε / ``pgd_steps``.  Neurons the perturbation exploits end with small masks; the ones whose
mask is at most ``threshold`` (or the ``prune_count`` smallest) are pruned in the *original*
network by setting their γ to 0 (the authors' pruning; β stays).  Defaults from the paper and the
authors' code: ε 0.4, α 0.2, mask lr 0.2 with momentum 0.9, 2000 iterations of batch 128, 1 % of the
training set clean, threshold 0.2.  The threshold is fixed in advance, never chosen on test ASR.

The masks are optimised in train mode (batch statistics), as the authors do; the network copy the
masks are trained on has its weights frozen, and its running statistics are discarded: pruning is
applied to the backdoored model as it was.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from bdray.config import ConfigError, check_choice, check_number, check_positive, check_positive_int
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import Threat, load_threat
from bdray.methods.common import seed_everything
from bdray.methods.erasing.clean_data import check_clean_data_fields, clean_subset, defended_metrics
from bdray.train import AugmentedTrainSettings, Batch, Engine, EpochInfo, Phase, Update
from bdray.train.batches import repeated
from bdray.train.context import RunContext, unwrap

PRUNE_BY = ("threshold", "number")


@dataclasses.dataclass
class ANPConfig(AugmentedTrainSettings):
    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    clean_fraction: float = 0.01   # share of the training set the defender holds clean (the paper: 1 %)
    subset_seed: int = 0
    eps: float = 0.4               # bound ε of the neuron perturbations δ, ξ
    pgd_steps: int = 1             # signed ascent steps on the perturbation, each of ε / pgd_steps
    alpha: float = 0.2             # weight of the unperturbed loss (1 − α: the perturbed one)
    mask_lr: float = 0.2
    momentum: float = 0.9
    iterations: int = 2000         # mask updates in all
    iters_per_epoch: int = 500     # an evaluated, checkpointed epoch every this many (the authors print every 500)
    batch_size: int = 128
    prune_by: str = "threshold"    # threshold: prune masks ≤ threshold; number: the prune_count smallest masks
    threshold: float = 0.2
    prune_count: int = 0

    def validate(self) -> None:
        super().validate()
        check_clean_data_fields(self)
        check_number("eps", self.eps, low=0.0)
        check_positive_int("pgd_steps", self.pgd_steps)
        check_number("alpha", self.alpha, low=0.0, high=1.0)
        check_positive("mask_lr", self.mask_lr)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_positive_int("iterations", self.iterations)
        check_positive_int("iters_per_epoch", self.iters_per_epoch)
        check_choice("prune_by", self.prune_by, PRUNE_BY)
        check_number("threshold", self.threshold, low=0.0, high=1.0)
        check_number("prune_count", self.prune_count, low=0, integer=True)


def neuron_layers(model: nn.Module) -> List[nn.modules.batchnorm._BatchNorm]:
    """Every affine BatchNorm of ``model`` in module order: ANP's neurons are their channels."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]


class PerturbedNetwork(nn.Module):
    """A frozen copy of a network with a mask per neuron (the only parameters) and, per forward
    pass, optional multiplicative perturbations of each neuron's weight and bias.

    A forward hook turns each BatchNorm's output ``y = γ x̂ + β`` into ``c_w (y − β) + c_b β`` with
    ``c_w = m + δ`` and ``c_b = 1 + ξ`` on a perturbed pass, ``c_w = m``, ``c_b = 1`` on a plain one.
    The perturbed and the plain loss take separate passes: in train mode a layer's batch statistics
    depend on the perturbation of the layers before it, so one pass over ``[x; x]`` would mix them."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        for p in net.parameters():
            p.requires_grad_(False)
        self.layers = neuron_layers(net)
        if not self.layers:
            raise ConfigError("model", type(net).__name__, "a network with affine BatchNorm layers (ANP masks their channels)")
        self.masks = nn.ParameterList([nn.Parameter(torch.ones_like(bn.weight)) for bn in self.layers])
        self.weight_noise: Optional[List[torch.Tensor]] = None
        self.bias_noise: Optional[List[torch.Tensor]] = None
        self._perturbed = False  # whether this pass applies δ, ξ
        for k, bn in enumerate(self.layers):
            bn.register_forward_hook(self._hook(k))

    def _hook(self, k: int):
        def apply(bn, _inputs, out):
            shape = (1, -1) + (1,) * (out.dim() - 2)
            beta = bn.bias.view(shape)
            c_w = self.masks[k].view(shape)
            if not self._perturbed:
                return c_w * (out - beta) + beta
            c_w = c_w + self.weight_noise[k].view(shape)
            return c_w * (out - beta) + (1.0 + self.bias_noise[k].view(shape)) * beta
        return apply

    def forward(self, x: torch.Tensor, perturbed: bool = False) -> torch.Tensor:
        self._perturbed = perturbed
        try:
            return self.net(x)
        finally:
            self._perturbed = False

    def draw_noise(self, eps: float) -> None:
        """A fresh random start for δ and ξ, uniform in [−ε, ε] (the global generator: checkpointed)."""
        self.weight_noise = [torch.empty_like(m).uniform_(-eps, eps) for m in self.masks]
        self.bias_noise = [torch.empty_like(m).uniform_(-eps, eps) for m in self.masks]

    def mask_values(self) -> torch.Tensor:
        return torch.cat([m.detach().flatten() for m in self.masks])


def adversarial_noise(model: PerturbedNetwork, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int) -> None:
    """ANP's inner maximum: from a random start, ``steps`` signed ascent steps of ε / steps on the
    cross-entropy of the perturbed network, kept within [−ε, ε]."""
    model.draw_noise(eps)
    for _ in range(steps):
        noise = model.weight_noise + model.bias_noise
        for t in noise:
            t.requires_grad_(True)
        loss = F.cross_entropy(model(x, perturbed=True), y)
        grads = torch.autograd.grad(loss, noise)
        with torch.no_grad():
            stepped = [(t + eps / steps * g.sign()).clamp_(-eps, eps) for t, g in zip(noise, grads)]
        n = len(model.masks)
        model.weight_noise, model.bias_noise = stepped[:n], stepped[n:]


def neurons_to_prune(masks: torch.Tensor, prune_by: str, threshold: float, count: int) -> torch.Tensor:
    """A boolean over the concatenated masks: the neurons ANP prunes."""
    if prune_by == "threshold":
        return masks <= threshold
    chosen = torch.zeros_like(masks, dtype=torch.bool)
    chosen[torch.argsort(masks, stable=True)[:min(count, len(masks))]] = True
    return chosen


def pruned_copy(model: nn.Module, prune: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with the chosen neurons' BatchNorm weights γ set to 0."""
    pruned = copy.deepcopy(model)
    start = 0
    with torch.no_grad():
        for bn in neuron_layers(pruned):
            n = bn.weight.numel()
            bn.weight[prune[start:start + n].to(bn.weight.device)] = 0
            start += n
    return pruned


def train_anp(cfg: ANPConfig, ctx: RunContext) -> Dict[str, Any]:
    threat = load_threat(cfg.backdoor, ctx)
    seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    engine = Engine(ctx, cfg, cfg.seed, name="anp")
    perturbed = engine.module("masks", PerturbedNetwork(copy.deepcopy(threat.model)))
    opt = engine.optimizer("optimizer", torch.optim.SGD(unwrap(perturbed).masks.parameters(), lr=cfg.mask_lr,
                                                        momentum=cfg.momentum))
    forward = engine.caller(perturbed)

    def loss(batch: Batch):
        x, y = batch.x, batch.y
        if cfg.eps > 0:
            adversarial_noise(unwrap(perturbed), x, y, cfg.eps, cfg.pgd_steps)
            robust = F.cross_entropy(forward(x, perturbed=True), y)
            natural = F.cross_entropy(forward(x), y)
        else:
            natural = robust = F.cross_entropy(forward(x), y)
        return cfg.alpha * natural + (1 - cfg.alpha) * robust, {"natural_loss": natural.detach(),
                                                                 "perturbed_loss": robust.detach()}

    def clip_masks():
        with torch.no_grad():
            for m in unwrap(perturbed).masks:
                m.clamp_(0.0, 1.0)

    def evaluate(_info: EpochInfo) -> Dict[str, Any]:
        return anp_metrics(cfg, threat, unwrap(perturbed).mask_values(), len(subset))

    epochs = -(-cfg.iterations // cfg.iters_per_epoch)
    batches = repeated(subset, cfg.iters_per_epoch * cfg.batch_size, cfg.batch_size, crop_padding=cfg.crop_padding,
                       hflip=threat.data.hflip)
    update = Update(opt, batches, loss, after_step=clip_masks)
    metrics = engine.run([Phase("masks", epochs, [update], evaluate, training=[perturbed])])
    prune = neurons_to_prune(unwrap(perturbed).mask_values(), cfg.prune_by, cfg.threshold, cfg.prune_count)
    return {**metrics, "model": pruned_copy(threat.model, prune)}


def anp_metrics(cfg: Any, threat: Threat, masks: torch.Tensor, clean_samples: int) -> Dict[str, Any]:
    """The backdoored model pruned by the current masks, evaluated; plus the pruning counts.  ``cfg``:
    any config with ANP's pruning fields (``prune_by``, ``threshold``, ``prune_count``; RNP's too)."""
    prune = neurons_to_prune(masks, cfg.prune_by, cfg.threshold, cfg.prune_count)
    metrics = defended_metrics(pruned_copy(threat.model, prune), threat, clean_samples)
    metrics.update(pruned_neurons=int(prune.sum()), pruned_fraction=float(prune.float().mean()),
                   mask_mean=float(masks.mean()), masks_below_half=int((masks < 0.5).sum()))
    return metrics
