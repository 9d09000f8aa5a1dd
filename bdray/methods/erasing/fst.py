"""``fst``: Feature Shift Tuning (Min, Qin, Shen & Cheng, "Towards Stable Backdoor Purification
through Feature Shift Tuning", NeurIPS 2023; docs/methods.md).

Plain fine-tuning fails at low poisoning rates because the backdoor and clean features are
entangled and the old classifier keeps reading both.  FST re-initialises the linear classifier
and fine-tunes the whole network on the defender's clean subset with a penalty that pushes the new
classifier away from the compromised one:

    L = CE(f(x), y) + α · ⟨w, w_ori⟩,     ‖w‖ held at ‖w_ori‖ after every step

so the features must shift for the new head to fit them.  Defaults from the paper and the authors'
code: α = 0.2, SGD lr 0.01 with momentum 0.9 and a cosine schedule, 10 epochs, 2 % of the training
set clean, the head re-initialised uniform in ±1/√d.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Dict, Tuple

import torch

from bdray.config import check_non_negative
from bdray.methods.attack.threat import load_threat
from bdray.methods.common import seed_everything
from bdray.methods.erasing.clean_data import ErasingConfig, clean_subset, train_on_clean
from bdray.train.context import RunContext
from bdray.train.schedules import cosine_lr_factor


@dataclasses.dataclass
class FSTConfig(ErasingConfig):
    clean_fraction: float = 0.02
    epochs: int = 10
    lr_milestones: Tuple[float, ...] = ()   # FST decays the lr by a cosine, not in steps
    alpha: float = 0.2                      # weight of ⟨w, w_ori⟩

    def validate(self) -> None:
        super().validate()
        check_non_negative("alpha", self.alpha)


def reinitialise_head(linear: torch.nn.Linear, generator: torch.Generator) -> None:
    """Weight and bias uniform in ±1/√(in_features), as the authors' code draws them."""
    bound = 1.0 / math.sqrt(linear.in_features)
    with torch.no_grad():
        for p in (linear.weight, linear.bias):
            if p is not None:
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)


def train_fst(cfg: FSTConfig, ctx: RunContext) -> Dict[str, Any]:
    threat = load_threat(cfg.backdoor, ctx)
    seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    model = copy.deepcopy(threat.model)
    linear = model.backbone.linear
    original = linear.weight.detach().clone()
    norm = original.norm()
    reinitialise_head(linear, torch.Generator().manual_seed(cfg.seed))

    def shift_penalty(_model, _x, _y):
        inner = (linear.weight * original).sum()
        return cfg.alpha * inner, {"head_inner_product": inner.detach()}

    def keep_norm():
        with torch.no_grad():
            linear.weight.mul_(norm / linear.weight.norm().clamp_min(1e-12))

    metrics = train_on_clean(cfg, ctx, threat, model, subset, extra_loss=shift_penalty, after_step=keep_norm,
                             lr_factor=cosine_lr_factor)
    return {**metrics, "model": model}
