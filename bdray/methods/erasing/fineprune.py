"""``fineprune``: Fine-Pruning (Liu et al. 2018; methods.md §3.2).

Prune the channels of the last convolutional stage that are least active on the clean subset --
in order of increasing mean activation, a step at a time -- until the clean-subset accuracy has
dropped by ``prune_acc_drop`` or ``prune_max_ratio`` of the channels are gone; then fine-tune
with the pruned channels held at zero.  A pruned channel is removed by zeroing its column of the
classifier (the only consumer of the pooled last-stage channels), which keeps every architecture's
code unchanged.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict

import torch

from bdray.config import check_number
from bdray.data import to_float
from bdray.data.batches import batched_logits
from bdray.methods.attack.threat import load_threat
from bdray.methods.common import seed_everything
from bdray.methods.erasing.clean_data import ErasingConfig, clean_subset, train_on_clean
from bdray.metrics import accuracy
from bdray.train.context import RunContext


@dataclasses.dataclass
class FinePruneConfig(ErasingConfig):
    prune_acc_drop: float = 0.10   # stop before clean-subset accuracy falls by more than this
    prune_max_ratio: float = 0.9   # never prune more than this share of channels
    prune_step: float = 0.05       # share of channels pruned per step

    def validate(self) -> None:
        super().validate()
        check_number("prune_acc_drop", self.prune_acc_drop, low=0.0, high=1.0)
        check_number("prune_max_ratio", self.prune_max_ratio, low=0.0, high=1.0, high_open=True)
        check_number("prune_step", self.prune_step, low=0.0, high=1.0, low_open=True)


def prune_last_stage(model, images: torch.Tensor, labels: torch.Tensor, acc_drop: float, max_ratio: float,
                     step: float) -> torch.Tensor:
    """Zero the classifier columns of the least-active channels; returns the keep-mask (1 = kept)."""
    model.eval()
    linear = model.backbone.linear
    with torch.no_grad():
        activity = torch.cat([model.features(images[i:i + 512]) for i in range(0, len(images), 512)]).mean(0)
        order = torch.argsort(activity)  # least active first
        base_acc = accuracy(batched_logits(model, images).argmax(1), labels)
        keep = torch.ones(len(activity), device=activity.device)
        original = linear.weight.detach().clone()
        n_step = max(1, int(round(step * len(order))))
        pruned = 0
        while pruned + n_step <= int(max_ratio * len(order)):
            trial = keep.clone()
            trial[order[pruned:pruned + n_step]] = 0
            linear.weight.copy_(original * trial)
            if accuracy(batched_logits(model, images).argmax(1), labels) < base_acc - acc_drop:
                break
            keep, pruned = trial, pruned + n_step
        linear.weight.copy_(original * keep)
    return keep


def train_fineprune(cfg: FinePruneConfig, ctx: RunContext) -> Dict[str, Any]:
    threat = load_threat(cfg.backdoor, ctx)
    seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    model = copy.deepcopy(threat.model)
    keep = prune_last_stage(model, to_float(subset.images), subset.labels, cfg.prune_acc_drop,
                            cfg.prune_max_ratio, cfg.prune_step)
    linear = model.backbone.linear

    def hold_pruned_at_zero():
        with torch.no_grad():
            linear.weight.mul_(keep)

    pruned_fraction = float(1 - keep.mean())
    metrics = train_on_clean(cfg, ctx, threat, model, subset, after_step=hold_pruned_at_zero,
                             extra_metrics={"pruned_fraction": pruned_fraction})
    return {**metrics, "model": model}
