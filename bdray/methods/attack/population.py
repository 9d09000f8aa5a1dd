"""``backdoor_population``: K ``backdoor`` trainings of one architecture in one trial, vectorised.

The K members share everything but their optimiser settings (``lrs``, and optionally
``weight_decays`` / ``momentums``): the same seeded initialisation, poisoned split, batch order and
augmentation.  Their parameters and BatchNorm buffers are stacked with
``torch.func.stack_module_state`` and every step runs all K forward/backward passes as one
``vmap``-ed call, then one vectorised SGD (Nesterov momentum, cosine schedule, per-member lr and
weight decay), as one update of the training engine -- so member k is the ``backdoor`` run with ``lr = lrs[k]`` (up to float rounding),
at a fraction of K separate trials' cost for small models.

Each report carries ``member{k}_<metric>`` for every member; the sweep tables expand a population
trial into K rows (``population_members``), one per member, with that member's config.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from bdray.config import Config, ConfigError, check_non_negative, check_number, check_positive
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import poisoned_training
from bdray.metrics import evaluate_splits
from bdray.train import DeviceSettings, Engine, Phase, Update
from bdray.train.batches import shuffled
from bdray.train.context import RunContext
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


class StackedMembers(nn.Module):
    """K copies of one model as one module: every parameter and BatchNorm buffer stacked along a
    leading member dimension (``torch.func.stack_module_state``); ``forward(x)`` runs all K on the
    same batch as one ``vmap``-ed call (K×B×classes).  Its state dict is the checkpoint's."""

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        params, buffers = stack_module_state([copy.deepcopy(model) for _ in range(size)])
        self._names = {"params": list(params), "buffers": list(buffers)}
        for name, value in params.items():
            self.register_parameter(_safe(name), nn.Parameter(value.detach()))
        for name, value in buffers.items():
            self.register_buffer(_safe(name), value)
        # the structure the stacked tensors are called through (on the meta device, not a submodule)
        self.__dict__["_template"] = copy.deepcopy(model).to("meta")
        self.__dict__["_model"] = model
        self.__dict__["_batched"] = vmap(self._call, in_dims=(0, 0, None), randomness="same")

    def _call(self, params, buffers, x):
        return functional_call(self._template, (params, buffers), (x,))

    def stacked(self, kind: str) -> Dict[str, torch.Tensor]:
        return {name: getattr(self, _safe(name)) for name in self._names[kind]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._batched(self.stacked("params"), self.stacked("buffers"), x)

    def member(self, k: int) -> nn.Module:
        """A real module holding member k's parameters and buffers (for evaluation and artifacts)."""
        out = copy.deepcopy(self._model).to(next(self.parameters()).device)
        out.load_state_dict({**{n: p[k].detach() for n, p in self.stacked("params").items()},
                             **{n: b[k] for n, b in self.stacked("buffers").items()}})
        return out


def _safe(name: str) -> str:
    return name.replace(".", "__")


class MemberSGD(torch.optim.Optimizer):
    """``torch.optim.SGD(nesterov=True)``'s update on stacked parameters, with per-member lr,
    momentum and weight decay.  The group's ``lr`` is a factor on every member's lr (the engine's
    schedule sets it)."""

    def __init__(self, params, lrs, momentums, weight_decays):
        super().__init__(params, dict(lr=1.0, member_lrs=list(lrs), member_momentums=list(momentums),
                                      member_weight_decays=list(weight_decays)))
        self._vectors: Dict[int, tuple] = {}

    def _per_member(self, group, p: torch.Tensor) -> tuple:
        """K values shaped K×1×…×1 to broadcast against ``p`` (built once per parameter)."""
        if id(p) not in self._vectors:
            shape = (-1, *([1] * (p.dim() - 1)))
            self._vectors[id(p)] = tuple(torch.tensor(group[key], dtype=p.dtype, device=p.device).view(shape)
                                         for key in ("member_lrs", "member_momentums", "member_weight_decays"))
        return self._vectors[id(p)]

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                lr, momentum, weight_decay = self._per_member(group, p)
                d_p = p.grad + weight_decay * p
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = d_p.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(d_p)
                p.sub_(lr * group["lr"] * (d_p + momentum * state["momentum_buffer"]))


def train_backdoor_population(cfg: PopulationConfig, ctx: RunContext) -> Dict[str, Any]:
    """One phase of the training engine whose one update trains all K members on each batch."""
    if ctx.world_size > 1:
        raise ConfigError("workers_per_trial", ctx.world_size, "1: a population trains its members on one device")
    base_cfg = cfg.member
    members = [cfg.member_config(k) for k in range(cfg.size)]
    poisoned, model = poisoned_training(base_cfg, ctx)
    data, trigger, split = poisoned.data, poisoned.trigger, poisoned.train
    # members run under vmap: no torch.compile, and stacked parameters are 5-D (no channels_last)
    engine = Engine(ctx, DeviceSettings(precision=base_cfg.precision, channels_last="off"), base_cfg.seed,
                    name="backdoor_population")
    population = engine.module("population", StackedMembers(model.to(ctx.device), cfg.size))
    opt = engine.optimizer("optimizer", MemberSGD(population.parameters(), [m.lr for m in members],
                                                  [m.momentum for m in members], [m.weight_decay for m in members]))
    size = cfg.size

    def loss(batch):
        logits = population(batch.x)  # K×B×classes
        per_member = F.cross_entropy(logits.float().flatten(0, 1), batch.y.repeat(size),
                                     reduction="none").view(size, -1).mean(1)
        return per_member.sum(), {f"member{k}_train_loss": per_member[k] for k in range(size)}

    n = len(split)
    update = Update(opt, shuffled(split, torch.arange(n), base_cfg.batch_size, ctx, crop_padding=base_cfg.crop_padding,
                                  hflip=data.hflip),
                    loss, name=None, lr=cosine_lr_factor, steps=max(1, -(-n // base_cfg.batch_size)), models=size)

    def evaluate(info) -> Dict[str, Any]:
        metrics: Dict[str, Any] = {"population_size": size}
        for k in range(size):
            scores = evaluate_splits(population.member(k), data, trigger, base_cfg.target_class)
            metrics.update({f"member{k}_{key}": value for key, value in scores.items()})
        return metrics

    metrics = engine.run([Phase("train", base_cfg.epochs, [update], evaluate, training=[population])])
    return {**metrics, "models": [population.member(k) for k in range(size)]}


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
