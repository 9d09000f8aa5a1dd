"""``pt``: partial training, isolate, unlearn (methods.md §3.4, the PT paper).

1. M_s: the model trained on the suspicious set D with plain cross-entropy -- exactly the attack
   artifact of ``backdoor`` (trained once, shared with every other trial that needs it).
2. M′: M_s copied (``partial_init="copy"``, methods.md) or freshly initialised (``"fresh"``), its
   first ``freeze_fraction`` of parameterised layers (conv / norm / linear, counted in order)
   frozen, trained on D for ``partial_epochs``.
3. Per-sample loss under M′; the lowest ``isolation_ratio`` is D_s, the rest D_c.  Isolation with
   M_s is computed too (``base_isolation_precision`` / ``base_isolation_recall``) so the paper's claim
   that M′ isolates better can be checked.
4. From M_s: each step descends CE on a D_c batch (``clean_lr``) and ascends CE on a D_s batch
   (``isolated_lr``), for ``epochs`` passes over D_c.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Dict, List

import torch
import torch.nn.functional as F

from bdray.artifacts import backdoored_model
from bdray.config import check_choice, check_number, check_positive, check_positive_int
from bdray.data import iterate_batches
from bdray.methods.common import seed_everything, set_lr, cosine_lr_factor
from bdray.methods.poisoned import (PoisonedTrainingConfig, augmented_batch, check_ratio, complement,
                                    endless_batches, isolate_lowest_loss, isolation_quality, load_poisoned,
                                    per_sample_loss, sgd, train_epoch)
from bdray.metrics import evaluate_backdoor
from bdray.models import create_model
from bdray.runtime.context import RunContext, unwrap


def parameterised_layers(model: torch.nn.Module) -> List[torch.nn.Module]:
    """Modules that own parameters directly (conv, norm, linear), in definition order."""
    return [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]


def freeze_first_layers(model: torch.nn.Module, fraction: float) -> int:
    """Freeze the parameters of the first ``round(fraction·L)`` parameterised layers (at least one
    when fraction > 0, never all of them).  Returns how many were frozen."""
    layers = parameterised_layers(model)
    n = 0 if fraction <= 0 else min(len(layers) - 1, max(1, int(round(fraction * len(layers)))))
    for layer in layers[:n]:
        for p in layer.parameters(recurse=False):
            p.requires_grad_(False)
    return n


@dataclasses.dataclass
class PTConfig(PoisonedTrainingConfig):
    """Defaults follow the paper where it is explicit (isolation 1/10, lr 0.001 / 0.0001, 10 epochs,
    first 10 % of layers frozen); M′'s training is not given there and is sized for the digits."""

    freeze_fraction: float = 0.1
    # M′ starts from a fresh initialisation ("fresh": the paper's "initialise a model identical to M_s")
    # or from M_s's weights ("copy", methods.md's reading); on the digits "fresh" isolates far better
    partial_init: str = "fresh"
    partial_epochs: int = 3
    partial_lr: float = 0.01
    isolation_ratio: float = 0.1
    epochs: int = 10
    clean_lr: float = 1e-3         # descent on D_c
    isolated_lr: float = 1e-4      # ascent on D_s
    crop_padding: int = 0          # the paper trains without augmentation

    def validate(self) -> None:
        super().validate()
        check_number("freeze_fraction", self.freeze_fraction, low=0.0, high=1.0, high_open=True)
        check_choice("partial_init", self.partial_init, ("copy", "fresh"))
        check_positive_int("partial_epochs", self.partial_epochs)
        check_positive("partial_lr", self.partial_lr)
        check_ratio("isolation_ratio", self.isolation_ratio)
        check_positive_int("epochs", self.epochs)
        check_positive("clean_lr", self.clean_lr)
        check_number("isolated_lr", self.isolated_lr, low=0.0)


def _unlearn_epoch(model, opt_clean, opt_isolated, train, clean_idx, isolated_idx, cfg, ctx, hflip, gen):
    """One pass over D_c; each D_c batch is followed by an ascent step on the next D_s batch
    (D_s is cycled; no ascent when ``opt_isolated`` is None)."""
    model.train()
    sums = {"train_loss": 0.0, "isolated_loss": 0.0}
    steps = 0
    isolated_batches = endless_batches(len(isolated_idx), cfg.batch_size, gen, ctx)
    for pos in iterate_batches(len(clean_idx), cfg.batch_size, shuffle=True, generator=gen, rank=ctx.rank,
                               world_size=ctx.world_size):
        steps += 1
        for idx, opt, sign, key in ((clean_idx[pos], opt_clean, 1.0, "train_loss"),
                                    (None, opt_isolated, -1.0, "isolated_loss")):
            if opt is None:
                continue
            if idx is None:
                ipos = next(isolated_batches, None)
                if ipos is None:
                    continue
                idx = isolated_idx[ipos]
            x, y, _ = augmented_batch(train, idx, cfg, hflip, gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            (sign * loss).backward()
            opt.step()
            sums[key] += float(loss.detach())
    return {k: v / max(steps, 1) for k, v in sums.items()}


def train_pt(cfg: PTConfig, ctx: RunContext) -> Dict[str, Any]:
    base, base_metrics, trigger_state = backdoored_model(cfg.backdoor, ctx, with_trigger_state=True)
    seed_everything(cfg.seed)
    pd_ = load_poisoned(cfg.backdoor, ctx, trigger_state)
    data, train = pd_.data, pd_.train
    n = len(train)
    undefended = {"undefended_acc": base_metrics["acc"], "undefended_asr": base_metrics["asr"]}

    state = ctx.load_checkpoint()
    start_epoch = int(state["epoch"]) if state is not None else 0
    if state is not None:
        ctx.log(f"pt: resuming from epoch {start_epoch}")

    # isolation with M_s, for comparison
    base_isolated = isolate_lowest_loss(per_sample_loss(base, train), cfg.isolation_ratio)
    base_quality = isolation_quality(base_isolated, pd_.poison_indices, prefix="base_")

    # M′: partially frozen, trained on D
    if state is not None and state["stage"] == "final":
        isolated = state["isolated"].cpu()
        frozen = int(state["frozen_layers"])
    else:
        partial = copy.deepcopy(base) if cfg.partial_init == "copy" else create_model(
            cfg.backdoor.model, data.image_shape, data.num_classes, data.mean, data.std).to(ctx.device)
        frozen = freeze_first_layers(partial, cfg.freeze_fraction)
        partial = ctx.prepare_model(partial)
        opt = sgd(partial, cfg.partial_lr, cfg)
        if state is not None:
            unwrap(partial).load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        for epoch in range(start_epoch, cfg.partial_epochs):
            t0 = time.time()
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            set_lr(opt, cfg.partial_lr * cosine_lr_factor(epoch / cfg.partial_epochs))
            loss = train_epoch(partial, opt, train, torch.arange(n), cfg, ctx, data.hflip, gen)
            metrics = evaluate_backdoor(unwrap(partial), data.test, pd_.trigger, pd_.target_class)
            metrics.update(base_quality)
            metrics.update(undefended, epoch=epoch + 1, stage="partial", train_loss=loss, frozen_layers=frozen,
                           epoch_time_s=time.time() - t0, resumed_from_epoch=start_epoch)
            ctx.report(metrics, {"epoch": epoch + 1, "stage": "partial", "model": unwrap(partial).state_dict(),
                                 "optimizer": opt.state_dict(), "frozen_layers": frozen})
        isolated = isolate_lowest_loss(per_sample_loss(unwrap(partial), train), cfg.isolation_ratio)
        del partial
    quality = isolation_quality(isolated, pd_.poison_indices)
    ctx.log(f"pt: isolated {len(isolated)} samples with M′: precision {quality['isolation_precision']:.3f} "
            f"(with M_s: {base_quality['base_isolation_precision']:.3f})")

    # final training from M_s
    model = ctx.prepare_model(copy.deepcopy(base))
    opt_clean = sgd(model, cfg.clean_lr, cfg)
    opt_isolated = sgd(model, cfg.isolated_lr, cfg) if cfg.isolated_lr > 0 else None
    first = cfg.partial_epochs
    if state is not None and state["stage"] == "final":
        unwrap(model).load_state_dict(state["model"])
        opt_clean.load_state_dict(state["optimizer"])
        if opt_isolated is not None:
            opt_isolated.load_state_dict(state["optimizer_isolated"])
    clean_idx = complement(isolated, n)
    metrics: Dict[str, Any] = {}
    for epoch in range(max(first, start_epoch), first + cfg.epochs):
        t0 = time.time()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        losses = _unlearn_epoch(model, opt_clean, opt_isolated, train, clean_idx, isolated, cfg, ctx, data.hflip, gen)
        metrics = evaluate_backdoor(unwrap(model), data.test, pd_.trigger, pd_.target_class)
        metrics.update(quality)
        metrics.update(base_quality)
        metrics.update(undefended, **losses, epoch=epoch + 1, stage="final", frozen_layers=frozen,
                       epoch_time_s=time.time() - t0, resumed_from_epoch=start_epoch,
                       poisoned_samples=len(pd_.poison_indices))
        ctx.report(metrics, {"epoch": epoch + 1, "stage": "final", "model": unwrap(model).state_dict(),
                             "optimizer": opt_clean.state_dict(),
                             "optimizer_isolated": opt_isolated.state_dict() if opt_isolated is not None else {},
                             "isolated": isolated, "frozen_layers": frozen})
    return {**metrics, "model": unwrap(model), "isolated": isolated}
