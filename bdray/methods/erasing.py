"""What the clean-data erasing baselines share (methods.md §3.2): the config fields, the clean
subset (a fraction of the clean training set, drawn by seed, duplicated up to the per-epoch sample
count) and one supervised training loop with checkpoints and per-epoch evaluation."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from bdray.config import (Config, ConfigError, check_non_negative, check_number, check_positive,
                          check_positive_int)
from bdray.data import Split, augment, to_float
from bdray.methods.backdoor import BackdoorConfig
from bdray.methods.common import set_lr, step_lr_factor
from bdray.methods.threat import Threat
from bdray.metrics import evaluate_backdoor
from bdray.runtime.context import RunContext, unwrap


@dataclasses.dataclass
class ErasingConfig(Config):
    """Fields of every clean-data baseline.  Defaults follow methods.md §3.2 (SGD lr 0.01, momentum
    0.9, 20 epochs, batch 64, lr ×0.1 at epochs 10 and 15) with 500 samples per epoch for the
    embedded digits (the paper: 2000 for CIFAR-10)."""

    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    clean_fraction: float = 0.04   # share of the training set the defender holds clean (4 % or 1 %)
    subset_seed: int = 0           # which clean subset
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 20
    samples_per_epoch: int = 500
    batch_size: int = 64
    lr_milestones: Tuple[float, ...] = (0.5, 0.75)
    crop_padding: int = 2
    seed: int = 0

    def validate(self) -> None:
        if not isinstance(self.backdoor, BackdoorConfig):
            raise ConfigError("backdoor", self.backdoor, "a BackdoorConfig (the attack to erase)")
        check_number("clean_fraction", self.clean_fraction, low=0.0, high=1.0, low_open=True)
        check_number("subset_seed", self.subset_seed, low=0, integer=True)
        check_positive("lr", self.lr)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_non_negative("weight_decay", self.weight_decay)
        for name in ("epochs", "samples_per_epoch", "batch_size"):
            check_positive_int(name, getattr(self, name))
        for m in self.lr_milestones:
            check_number("lr_milestones", m, low=0.0, high=1.0)
        check_number("crop_padding", self.crop_padding, low=0, integer=True)
        check_number("seed", self.seed, low=0, integer=True)


def clean_subset(train: Split, fraction: float, seed: int) -> Split:
    """``round(fraction·N)`` (at least 1) clean training samples, drawn by ``seed``."""
    n = max(1, int(round(fraction * len(train))))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return train.subset(order.to(train.images.device))


def epoch_batches(n: int, samples_per_epoch: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches over a subset of ``n`` samples repeated up to ``samples_per_epoch``."""
    reps = -(-samples_per_epoch // n)
    order = torch.arange(n).repeat(reps)[torch.randperm(n * reps, generator=gen)][:samples_per_epoch]
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


ExtraLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], Tuple[torch.Tensor, Dict[str, float]]]


def train_on_clean(cfg: ErasingConfig, ctx: RunContext, threat: Threat, model: torch.nn.Module, subset: Split, *,
                   extra_loss: Optional[ExtraLoss] = None, after_step: Optional[Callable[[], None]] = None,
                   extra_state: Optional[Dict[str, Any]] = None, extra_metrics: Optional[Dict[str, Any]] = None,
                   report: bool = True, epochs: Optional[int] = None) -> Dict[str, Any]:
    """SGD with cross-entropy on ``subset`` (plus ``extra_loss``), evaluated and checkpointed each
    epoch; resumes from the context's checkpoint.  Returns the last epoch's metrics."""
    epochs = epochs or cfg.epochs
    model = ctx.prepare_model(model)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    start_epoch = 0
    state = ctx.load_checkpoint() if report else None
    if state is not None:
        unwrap(model).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
    metrics: Dict[str, Any] = {}
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        model.train()
        set_lr(opt, cfg.lr * step_lr_factor(epoch / epochs, cfg.lr_milestones))
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        sums: Dict[str, float] = {"train_loss": 0.0}
        steps = 0
        for idx in epoch_batches(len(subset), cfg.samples_per_epoch, cfg.batch_size, gen):
            idx = idx.to(ctx.device)
            x = augment(to_float(subset.images[idx]), crop_padding=cfg.crop_padding, hflip=threat.data.hflip,
                        generator=gen)
            y = subset.labels[idx]
            loss = F.cross_entropy(model(x), y)
            if extra_loss is not None:
                extra, parts = extra_loss(model, x, y)
                loss = loss + extra
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step()
            sums["train_loss"] += float(loss.detach())
            steps += 1
        if not report:
            continue
        metrics = evaluate_backdoor(unwrap(model), threat.data.test, threat.trigger, threat.target_class,
                                    activations=True)
        metrics.update({k: v / max(steps, 1) for k, v in sums.items()})
        metrics.update(extra_metrics or {})
        metrics.update(epoch=epoch + 1, epoch_time_s=time.time() - t0, resumed_from_epoch=start_epoch,
                       clean_samples=len(subset), teacher_acc=threat.metrics["acc"], teacher_asr=threat.metrics["asr"])
        ctx.report(metrics, {"epoch": epoch + 1, "model": unwrap(model).state_dict(), "optimizer": opt.state_dict(),
                             **(extra_state or {})})
    return metrics
