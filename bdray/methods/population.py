"""``backdoor_population``: K ``backdoor`` trainings of one architecture in one trial, vectorised.

The K members share everything but their optimiser settings (``lrs``, and optionally
``weight_decays`` / ``momentums``): the same seeded initialisation, poisoned split, batch order and
augmentation.  Their parameters and BatchNorm buffers are stacked with
``torch.func.stack_module_state`` and every step runs all K forward/backward passes as one
``vmap``-ed call, then one vectorised SGD (Nesterov momentum, cosine schedule, per-member lr and
weight decay) -- so member k is the ``backdoor`` run with ``lr = lrs[k]`` (up to float rounding),
at a fraction of K separate trials' cost for small models.

Each report carries ``member{k}_<metric>`` for every member; the sweep tables expand a population
trial into K rows (``population_members``), one per member, with that member's config.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from bdray.config import Config, ConfigError, check_non_negative, check_number, check_positive
from bdray.data import augmented_batches
from bdray.methods.backdoor import BackdoorConfig, poisoned_training
from bdray.metrics import evaluate_backdoor
from bdray.runtime.context import RunContext
from bdray.train.device import FastPath, synchronize
from bdray.train.settings import epoch_generator
from bdray.train.schedules import cosine_lr_factor

MEMBER_FIELDS = ("lr", "weight_decay", "momentum")


@dataclasses.dataclass
class PopulationConfig(Config):
    """One ``backdoor`` config (``member``) trained with each of ``lrs`` (and, when given, the
    matching ``weight_decays`` / ``momentums``; empty = the member's own value for all)."""

    member: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    lrs: Tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)
    weight_decays: Tuple[float, ...] = ()
    momentums: Tuple[float, ...] = ()
    seed: int = 0  # the members' seed is member.seed; this one is the sweep's bookkeeping only

    @property
    def size(self) -> int:
        return len(self.lrs)

    def validate(self) -> None:
        if not isinstance(self.member, BackdoorConfig):
            raise ConfigError("member", self.member, "a BackdoorConfig")
        if not self.lrs:
            raise ConfigError("lrs", self.lrs, "at least one learning rate (one per member)")
        for lr in self.lrs:
            check_positive("lrs", lr)
        for name, values in (("weight_decays", self.weight_decays), ("momentums", self.momentums)):
            if values and len(values) != len(self.lrs):
                raise ConfigError(name, values, f"empty or one value per member ({len(self.lrs)}, as lrs)")
        for wd in self.weight_decays:
            check_non_negative("weight_decays", wd)
        for m in self.momentums:
            check_number("momentums", m, low=0.0, high=1.0, high_open=True)
        if self.member.compile:
            raise ConfigError("member.compile", True, "False: population members run under vmap, not torch.compile")
        if self.member.channels_last == "on":
            raise ConfigError("member.channels_last", "on", "'auto' or 'off': stacked members are 5-D")

    def member_config(self, k: int) -> BackdoorConfig:
        """Member k as the plain ``backdoor`` config it stands for."""
        changes: Dict[str, Any] = {"lr": self.lrs[k]}
        if self.weight_decays:
            changes["weight_decay"] = self.weight_decays[k]
        if self.momentums:
            changes["momentum"] = self.momentums[k]
        return self.member.replace(**changes)


def _per_member(values: List[float], like: torch.Tensor) -> torch.Tensor:
    """K values shaped K×1×…×1 to broadcast against a stacked parameter."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *([1] * (like.dim() - 1)))


def member_metrics(prefix_k: str, metrics: Dict[str, Any]) -> Dict[str, Any]:
    return {f"{prefix_k}{key}": value for key, value in metrics.items()}


def train_backdoor_population(cfg: PopulationConfig, ctx: RunContext) -> Dict[str, Any]:
    if ctx.world_size > 1:
        raise ConfigError("workers_per_trial", ctx.world_size, "1: a population trains its members on one device")
    base_cfg = cfg.member
    members = [cfg.member_config(k) for k in range(cfg.size)]
    data, trigger, poisoned, model = poisoned_training(base_cfg, ctx)
    images, labels = poisoned.split.images, poisoned.split.labels
    fast = FastPath(ctx.device, base_cfg.precision, "off", False)
    model = model.to(ctx.device)
    copies = [copy.deepcopy(model) for _ in members]  # the same seeded initialisation for every member
    params, buffers = stack_module_state(copies)
    template = copy.deepcopy(model).to("meta")
    lrs = [m.lr for m in members]
    decays = {name: _per_member([m.weight_decay for m in members], p) for name, p in params.items()}
    momenta = {name: _per_member([m.momentum for m in members], p) for name, p in params.items()}
    lr_vec = {name: _per_member(lrs, p) for name, p in params.items()}
    velocity: Dict[str, torch.Tensor] = {}

    def forward(p, b, x):
        return functional_call(template, (p, b), (x,))

    batched = vmap(forward, in_dims=(0, 0, None), randomness="same")
    start_epoch = 0
    state = ctx.load_checkpoint()
    if state is not None:
        for name in params:
            params[name].data.copy_(state["params"][name])
            velocity[name] = state["velocity"][name].to(ctx.device)
        for name in buffers:
            buffers[name].copy_(state["buffers"][name])
        start_epoch = int(state["epoch"])
        ctx.log(f"backdoor_population: resuming from epoch {start_epoch}")

    n = len(labels)
    steps = max(1, -(-n // base_cfg.batch_size))
    metrics: Dict[str, Any] = {}
    for epoch in range(start_epoch, base_cfg.epochs):
        t0 = time.perf_counter()
        gen = epoch_generator(base_cfg.seed, epoch)
        total_loss = torch.zeros(cfg.size, device=ctx.device)
        seen = 0
        for step, (x, y) in enumerate(augmented_batches(images, labels, base_cfg.batch_size, generator=gen,
                                                        crop_padding=base_cfg.crop_padding, hflip=data.hflip)):
            factor = cosine_lr_factor((epoch + step / steps) / base_cfg.epochs)
            with fast.autocast():
                logits = batched(params, buffers, x)  # K×B×classes
            per_member = F.cross_entropy(logits.float().flatten(0, 1), y.repeat(cfg.size),
                                         reduction="none").view(cfg.size, -1).mean(1)
            grads = torch.autograd.grad(per_member.sum(), list(params.values()))
            with torch.no_grad():
                for (name, p), g in zip(params.items(), grads):
                    _sgd_nesterov(name, p, g, velocity, lr_vec[name] * factor, momenta[name], decays[name])
            total_loss += per_member.detach() * len(y)
            seen += len(y)
        synchronize(ctx.device)
        train_time = time.perf_counter() - t0
        metrics = {"epoch": epoch + 1, "population_size": cfg.size, "train_time_s": train_time,
                   "train_images_per_s": seen * cfg.size / max(train_time, 1e-9), "resumed_from_epoch": start_epoch,
                   **fast.columns()}
        losses = (total_loss / max(seen, 1)).tolist()
        for k in range(cfg.size):
            member_model = _member_module(model, params, buffers, k)
            scores = evaluate_backdoor(member_model, data.test, trigger, base_cfg.target_class)
            scores["train_loss"] = losses[k]
            metrics.update(member_metrics(f"member{k}_", scores))
        metrics["epoch_time_s"] = time.perf_counter() - t0
        ctx.report(metrics, {"epoch": epoch + 1, "params": {k: v.detach() for k, v in params.items()},
                             "buffers": dict(buffers), "velocity": velocity})
    return {**metrics, "models": [_member_module(model, params, buffers, k) for k in range(cfg.size)]}


def _sgd_nesterov(name: str, p: torch.Tensor, grad: torch.Tensor, velocity: Dict[str, torch.Tensor],
                  lr: torch.Tensor, momentum: torch.Tensor, weight_decay: torch.Tensor) -> None:
    """``torch.optim.SGD(nesterov=True)``'s update, with per-member lr / momentum / weight decay."""
    d_p = grad + weight_decay * p
    if name not in velocity:
        velocity[name] = d_p.clone()
    else:
        velocity[name].mul_(momentum).add_(d_p)
    p.sub_(lr * (d_p + momentum * velocity[name]))


def _member_module(model: torch.nn.Module, params, buffers, k: int) -> torch.nn.Module:
    """A real module holding member k's parameters and buffers (for evaluation and artifacts)."""
    out = copy.deepcopy(model)
    out.load_state_dict({**{n: p[k].detach() for n, p in params.items()}, **{n: b[k] for n, b in buffers.items()}})
    return out


def expand_members(cfg: PopulationConfig, metrics: Dict[str, Any]) -> List[Tuple[int, BackdoorConfig, Dict[str, Any]]]:
    """A population's report as K plain rows: (k, member k's backdoor config, its metrics with the
    shared ones -- epoch, timing, placement -- kept)."""
    shared = {key: value for key, value in metrics.items() if not key.startswith("member")}
    out = []
    for k in range(cfg.size):
        prefix = f"member{k}_"
        own = {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}
        out.append((k, cfg.member_config(k), {**shared, **own}))
    return out
