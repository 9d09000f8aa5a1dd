"""``abl``: anti-backdoor learning (methods.md §3.3, the ABL paper).

Stage 1, isolation: train a fresh model on the poisoned set for ``isolation_epochs`` (T_te) with
local gradient ascent (LGA): loss = sign(L − γ)·L on the batch-mean cross-entropy L.  Then rank the
training samples by their loss and isolate the lowest ``isolation_ratio`` as D_b (the rest is D_c).
Stage 2: optionally keep training on D_c (``clean_epochs``), then unlearn: gradient *ascent* on
D_b (``unlearn_lr``, at most ``unlearn_epochs``, un-augmented as in the authors' code), stopped once
the model no longer fits D_b (``isolated_fit``, its accuracy on D_b at D_b's labels, at most
``unlearn_stop_accuracy``).

The three are phases of the training engine (``bdray.train``); every epoch is reported with its
``stage`` (isolation / clean / unlearning); the isolation quality
(``isolation_precision``, ``isolation_recall``) is judged against the recorded poison indices.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from bdray.config import check_non_negative, check_number, check_positive, check_positive_int
from bdray.methods.attack.threat import poisoned_set
from bdray.methods.common import seed_everything
from bdray.methods.training_time.poisoned import (PoisonedTrainingConfig, accuracy_on, against_undefended,
                                                  check_ratio, complement, isolate_lowest_loss, isolation_quality,
                                                  per_sample_loss, poisoned_batches, sgd, undefended_reference)
from bdray.metrics import evaluate_splits
from bdray.models import create_model
from bdray.train import Engine, EpochInfo, Phase, Update, cross_entropy
from bdray.train.context import RunContext, unwrap
from bdray.train.schedules import step_lr_factor


def lga_loss(forward, gamma: float):
    """Local gradient ascent: keeps the batch loss around γ (same gradient as flooding |L−γ|+γ)."""
    def loss_fn(batch):
        loss = F.cross_entropy(forward(batch.x), batch.y)
        return torch.sign(loss - gamma) * loss
    return loss_fn


@dataclasses.dataclass
class ABLConfig(PoisonedTrainingConfig):
    """Defaults sized for the embedded digits on a CPU; the paper's are
    ``bdray.presets.PAPER_SETTINGS["abl"]``."""

    isolation_epochs: int = 10          # T_te (authors' code 10, paper 20)
    gamma: float = 0.5                  # γ of LGA (paper and authors)
    isolation_lr: float = 0.1           # paper and authors
    # share of the training set isolated as D_b: the paper's 1 % (a share as large as the poison
    # isolates clean images too: RESULTS "Measurements behind the defaults")
    isolation_ratio: float = 0.01
    clean_epochs: int = 10              # training on D_c before unlearning (authors: 60)
    clean_lr: float = 0.05              # paper: 0.1, ×0.1 at 2/3 of the clean epochs
    clean_lr_milestones: Tuple[float, ...] = (0.66,)
    unlearn_epochs: int = 20            # at most this many epochs of gradient ascent on D_b (paper: 20) ...
    # ... stopped once the model predicts at most this share of D_b as its (target) labels, in eval
    # mode: the isolated samples are unlearned and further ascent only costs clean accuracy
    # (digits: acc falls ~1 point per extra epoch once asr is 0); None: run every unlearning epoch
    unlearn_stop_accuracy: Optional[float] = 0.0
    unlearn_lr: float = 5e-4
    unlearn_batch_size: int = 64

    def validate(self) -> None:
        super().validate()
        check_positive_int("isolation_epochs", self.isolation_epochs)
        check_non_negative("gamma", self.gamma)
        check_positive("isolation_lr", self.isolation_lr)
        check_ratio("isolation_ratio", self.isolation_ratio)
        check_number("clean_epochs", self.clean_epochs, low=0, integer=True)
        check_positive("clean_lr", self.clean_lr)
        for m in self.clean_lr_milestones:
            check_number("clean_lr_milestones", m, low=0.0, high=1.0)
        check_number("unlearn_epochs", self.unlearn_epochs, low=0, integer=True)
        if self.unlearn_stop_accuracy is not None:
            check_number("unlearn_stop_accuracy", self.unlearn_stop_accuracy, low=0.0, high=1.0)
        check_positive("unlearn_lr", self.unlearn_lr)
        check_positive_int("unlearn_batch_size", self.unlearn_batch_size)

    @property
    def total_epochs(self) -> int:
        return self.isolation_epochs + self.clean_epochs + self.unlearn_epochs


def train_abl(cfg: ABLConfig, ctx: RunContext) -> Dict[str, Any]:
    reference = undefended_reference(cfg, ctx)
    seed_everything(cfg.seed)
    pd_ = poisoned_set(cfg.backdoor, ctx)
    data, train = pd_.data, pd_.train
    engine = Engine(ctx, cfg, cfg.seed, name="abl")
    model = engine.module("model", create_model(cfg.backdoor.model, data.image_shape, data.num_classes, data.mean,
                                                data.std))
    forward = engine.caller(model)
    opt = {stage: engine.optimizer(stage, sgd(model, lr, cfg)) for stage, lr in
           (("isolation", cfg.isolation_lr), ("clean", cfg.clean_lr), ("unlearning", cfg.unlearn_lr))}
    state = engine.state
    everything = torch.arange(len(train))

    def isolate() -> None:  # D_b: the lowest-loss share under the model after the isolation phase
        if "isolated" in state:
            return
        state["isolation_losses"] = per_sample_loss(unwrap(model), train)
        state["isolated"] = isolate_lowest_loss(state["isolation_losses"], cfg.isolation_ratio)
        quality = isolation_quality(state["isolated"], pd_.poison_indices)
        ctx.log(f"abl: isolated {len(state['isolated'])} samples: precision {quality['isolation_precision']:.3f}, "
                f"recall {quality['isolation_recall']:.3f}")

    def evaluate(info: EpochInfo, stage: str) -> Dict[str, Any]:
        metrics = evaluate_splits(unwrap(model), data, pd_.trigger, pd_.target_class)
        if stage != "isolation":
            metrics.update(isolation_quality(state["isolated"], pd_.poison_indices,
                                             losses=state.get("isolation_losses")))
        if stage == "unlearning":
            metrics["isolated_fit"] = accuracy_on(unwrap(model), train, state["isolated"])
            metrics["unlearn_epochs_run"] = info.phase_epoch + 1
        metrics["poisoned_samples"] = len(pd_.poison_indices)
        metrics.update(against_undefended(metrics, reference))
        return metrics

    def unlearned(metrics: Dict[str, Any]) -> bool:
        return cfg.unlearn_stop_accuracy is not None and metrics["isolated_fit"] <= cfg.unlearn_stop_accuracy

    phases = [
        Phase("isolation", cfg.isolation_epochs,
              [Update(opt["isolation"], poisoned_batches(pd_, lambda: everything, cfg.batch_size, cfg, ctx),
                      lga_loss(forward, cfg.gamma))],
              lambda info: evaluate(info, "isolation"), training=[model]),
        Phase("clean", cfg.clean_epochs,
              [Update(opt["clean"], poisoned_batches(pd_, lambda: complement(state["isolated"], len(train)),
                                                     cfg.batch_size, cfg, ctx),
                      cross_entropy(forward),
                      lr=lambda progress: cfg.clean_lr * step_lr_factor(progress, cfg.clean_lr_milestones))],
              lambda info: evaluate(info, "clean"), training=[model], begin=isolate),
        # the isolated images as they are (the authors' unlearning has no augmentation: a shifted
        # crop moves or cuts the trigger the ascent is meant to unlearn)
        Phase("unlearning", cfg.unlearn_epochs,
              [Update(opt["unlearning"], poisoned_batches(pd_, lambda: state["isolated"], cfg.unlearn_batch_size, cfg,
                                                          ctx, augmented=False),
                      cross_entropy(forward), sign=-1.0)],
              lambda info: evaluate(info, "unlearning"), training=[model], begin=isolate, stop=unlearned),
    ]
    metrics = engine.run(phases)
    if "isolated" not in state:  # only the isolation phase ran: isolate at the end so its quality is reported
        isolate()
        metrics.update(isolation_quality(state["isolated"], pd_.poison_indices))
    return {**metrics, "model": unwrap(model), "isolated": state["isolated"].cpu()}
