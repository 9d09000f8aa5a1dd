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
M′'s training and the final training are the two phases of the training engine (``bdray.train``).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, List

import torch

from bdray.config import check_choice, check_number, check_positive, check_positive_int
from bdray.methods.attack.threat import backdoored_model, poisoned_set
from bdray.methods.common import seed_everything
from bdray.methods.training_time.poisoned import (PoisonedTrainingConfig, check_ratio, complement,
                                                  isolate_lowest_loss, isolation_quality, per_sample_loss,
                                                  poisoned_batches, sgd)
from bdray.metrics import der_columns, evaluate_splits
from bdray.models import create_model
from bdray.train import Engine, Phase, Update, cross_entropy
from bdray.train.batches import cycled
from bdray.train.context import RunContext, unwrap
from bdray.train.schedules import cosine_lr_factor


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


def train_pt(cfg: PTConfig, ctx: RunContext) -> Dict[str, Any]:
    base, base_metrics, trigger_state = backdoored_model(cfg.backdoor, ctx, with_trigger_state=True)
    seed_everything(cfg.seed)
    pd_ = poisoned_set(cfg.backdoor, ctx, trigger_state)
    data, train = pd_.data, pd_.train
    n = len(train)
    undefended = {"undefended_acc": base_metrics["acc"], "undefended_asr": base_metrics["asr"]}
    engine = Engine(ctx, cfg, cfg.seed, name="pt")
    state = engine.state

    # isolation with M_s, for comparison
    base_losses = per_sample_loss(base, train)
    base_isolated = isolate_lowest_loss(base_losses, cfg.isolation_ratio)
    base_quality = isolation_quality(base_isolated, pd_.poison_indices, prefix="base_", losses=base_losses)

    # M′: partially frozen, trained on D; then the final model, from M_s
    partial = copy.deepcopy(base) if cfg.partial_init == "copy" else create_model(
        cfg.backdoor.model, data.image_shape, data.num_classes, data.mean, data.std).to(ctx.device)
    frozen = freeze_first_layers(partial, cfg.freeze_fraction)
    partial = engine.module("partial", partial)
    opt_partial = engine.optimizer("partial", sgd(partial, cfg.partial_lr, cfg))
    model = engine.module("model", copy.deepcopy(base))
    opt_clean = engine.optimizer("clean", sgd(model, cfg.clean_lr, cfg))
    opt_isolated = engine.optimizer("isolated", sgd(model, cfg.isolated_lr, cfg)) if cfg.isolated_lr > 0 else None

    def isolate() -> None:  # D_s: the lowest-loss share under M′
        if "isolated" not in state:
            state["isolation_losses"] = per_sample_loss(unwrap(partial), train)
            state["isolated"] = isolate_lowest_loss(state["isolation_losses"], cfg.isolation_ratio)
        quality = isolation_quality(state["isolated"], pd_.poison_indices)
        ctx.log(f"pt: isolated {len(state['isolated'])} samples with M′: precision "
                f"{quality['isolation_precision']:.3f} (with M_s: {base_quality['base_isolation_precision']:.3f})")

    def evaluate(trained, final: bool) -> Dict[str, Any]:
        metrics = evaluate_splits(unwrap(trained), data, pd_.trigger, pd_.target_class)
        if final:
            metrics.update(isolation_quality(state["isolated"], pd_.poison_indices,
                                             losses=state.get("isolation_losses")))
        return {**metrics, **base_quality, **undefended, **der_columns(metrics, base_metrics),
                "frozen_layers": frozen, "poisoned_samples": len(pd_.poison_indices)}

    # each step of the final phase: descent on a D_c batch, then ascent on the next D_s batch
    final_updates = [Update(opt_clean, poisoned_batches(pd_, lambda: complement(state["isolated"], n), cfg.batch_size,
                                                        cfg, ctx),
                            cross_entropy(engine.caller(model)))]
    if opt_isolated is not None:
        final_updates.append(Update(opt_isolated, lambda gen: cycled(
            train, state["isolated"], cfg.batch_size, ctx, crop_padding=cfg.crop_padding, hflip=data.hflip)(gen),
            cross_entropy(engine.caller(model)), sign=-1.0, name="isolated_loss"))
    phases = [
        Phase("partial", cfg.partial_epochs,
              [Update(opt_partial, poisoned_batches(pd_, lambda: torch.arange(n), cfg.batch_size, cfg, ctx),
                      cross_entropy(engine.caller(partial)),
                      lr=lambda progress: cfg.partial_lr * cosine_lr_factor(progress))],
              lambda info: evaluate(partial, final=False), training=[partial]),
        Phase("final", cfg.epochs, final_updates, lambda info: evaluate(model, final=True), training=[model],
              begin=isolate),
    ]
    metrics = engine.run(phases)
    return {**metrics, "model": unwrap(model), "isolated": state["isolated"]}
