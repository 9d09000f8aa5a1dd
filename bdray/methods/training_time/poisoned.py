"""What the training-time defenses (ABL, PT, CBD) share.

The defender receives the *poisoned* training set and trains on it.  We keep the indices of the
samples that carry the trigger (the defender never uses them) so that isolation can be judged:
``isolation_precision`` = poisoned share of the isolated set, ``isolation_recall`` = share of the
poisoned samples that were isolated.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F

from bdray.config import ConfigError, check_non_negative, check_number, keyed_when_set
from bdray.data import Split, to_float
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import PoisonedData
from bdray.metrics import der_columns
from bdray.train import AugmentedTrainSettings
from bdray.train.batches import shuffled
from bdray.train.context import RunContext


@dataclasses.dataclass
class PoisonedTrainingConfig(AugmentedTrainSettings):
    """Fields every training-time defense has: the poisoned data it receives (``backdoor``: attack,
    poisoning rate, dataset, model), the SGD batch settings and the device settings."""

    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # ABL, CBD: also load (or train once: an artifact) the backdoored model of ``backdoor`` -- the same
    # poisoned data trained without a defense -- and report ``der`` / ``val_der`` and
    # ``undefended_acc`` / ``undefended_asr`` against it.  It changes no training (PT always does this:
    # its M_s is that model).  The sweep scripts switch it on.
    der_reference: bool = keyed_when_set(False)

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.backdoor, BackdoorConfig):
            raise ConfigError("backdoor", self.backdoor, "a BackdoorConfig (the poisoned training data)")
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_non_negative("weight_decay", self.weight_decay)


def undefended_reference(cfg: PoisonedTrainingConfig, ctx: RunContext) -> Optional[Dict[str, Any]]:
    """The backdoored model's metrics when ``cfg.der_reference`` (else None).  Call it before
    seeding the run: a model trained here then leaves the run's random streams as they were."""
    if not cfg.der_reference:
        return None
    from bdray.methods.attack.threat import backdoored_model

    _, metrics = backdoored_model(cfg.backdoor, ctx)
    return metrics


def against_undefended(metrics: Dict[str, Any], reference: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """``der`` / ``val_der`` and ``undefended_*`` of ``metrics`` against ``reference`` ({} without one)."""
    if reference is None:
        return {}
    return {"undefended_acc": reference["acc"], "undefended_asr": reference["asr"],
            **der_columns(metrics, reference)}


def per_sample_loss(model: torch.nn.Module, split: Split, batch_size: int = 1024) -> torch.Tensor:
    """Cross-entropy of every sample of ``split`` under ``model`` in eval mode, no augmentation (CPU)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(split), batch_size):
                x = to_float(split.images[start:start + batch_size])
                out.append(F.cross_entropy(model(x), split.labels[start:start + batch_size], reduction="none").cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def isolate_lowest_loss(losses: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices (sorted) of the ``round(ratio·N)`` samples with the lowest loss (at least one when
    ``ratio`` > 0); ties broken by index, so the result is deterministic."""
    n = len(losses)
    k = 0 if ratio <= 0 else min(n, max(1, int(round(ratio * n))))
    order = torch.sort(losses, stable=True).indices
    return order[:k].sort().values


def complement(indices: torch.Tensor, n: int) -> torch.Tensor:
    keep = torch.ones(n, dtype=torch.bool)
    keep[indices] = False
    return torch.nonzero(keep).flatten()


def accuracy_on(model: torch.nn.Module, split: Split, indices: torch.Tensor) -> float:
    """Share of ``split[indices]`` that ``model`` (eval mode, no augmentation) predicts as labelled:
    for an isolated set, how much of it the model still fits (one host sync)."""
    if len(indices) == 0:
        return math.nan
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            idx = indices.to(split.images.device)
            pred = model(to_float(split.images[idx])).argmax(1)
            return float((pred == split.labels[idx]).float().mean())
    finally:
        model.train(was_training)


def isolation_quality(isolated: torch.Tensor, poison_indices: torch.Tensor, prefix: str = "",
                      losses: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """``isolation_precision``, ``isolation_recall`` and ``isolated_samples`` (with ``prefix``);
    with the per-sample ``losses`` the isolation was made on, also the detectors' footing
    (``bdray.methods.detection.metrics``): ``isolation_tpr`` (= recall), ``isolation_fpr`` and
    ``isolation_auroc`` (the lower the loss, the more suspicious)."""
    hits = int(torch.isin(isolated, poison_indices).sum()) if len(isolated) else 0
    precision = hits / len(isolated) if len(isolated) else math.nan
    recall = hits / len(poison_indices) if len(poison_indices) else math.nan
    out = {f"{prefix}isolation_precision": precision, f"{prefix}isolation_recall": recall,
           f"{prefix}isolated_samples": int(len(isolated))}
    if losses is not None:
        out.update(score_quality(-losses, isolated, poison_indices, f"{prefix}isolation_"))
    return out


def score_quality(scores: torch.Tensor, flagged: torch.Tensor, poison_indices: torch.Tensor,
                  prefix: str) -> Dict[str, float]:
    """``<prefix>tpr``, ``fpr`` and ``auroc`` of per-sample suspicion ``scores`` and the ``flagged``
    indices against the recorded poison indices (one footing with the detectors)."""
    from bdray.methods.detection.metrics import detection_metrics

    poisoned = torch.zeros(len(scores), dtype=torch.bool)
    poisoned[poison_indices.cpu()] = True
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[flagged.cpu()] = True
    m = detection_metrics(mask, poisoned, scores.cpu(), prefix=prefix)
    return {f"{prefix}{k}": m[f"{prefix}{k}"] for k in ("tpr", "fpr", "auroc")}


def sgd(model: torch.nn.Module, lr: float, cfg: PoisonedTrainingConfig) -> torch.optim.SGD:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def poisoned_batches(pd_: PoisonedData, indices: Callable[[], torch.Tensor], batch_size: int,
                     cfg: PoisonedTrainingConfig, ctx: RunContext, augmented: bool = True):
    """An update's batch source: a shuffled pass over ``train[indices()]`` per epoch (``indices`` is
    read at each epoch's start, so a phase can use a set an earlier phase isolated)."""
    def source(gen: torch.Generator):
        return shuffled(pd_.train, indices(), batch_size, ctx, crop_padding=cfg.crop_padding,
                        hflip=pd_.data.hflip, augmented=augmented)(gen)
    return source


def check_ratio(field: str, value) -> None:
    check_number(field, value, low=0.0, high=1.0, low_open=True, high_open=True)
