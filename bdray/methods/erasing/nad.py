"""``nad``: Neural Attention Distillation (Li et al. 2021; methods.md §3.2).

Teacher: the backdoored model fine-tuned on the clean subset.  Student: the backdoored model
trained with CE + Σ_k β_k · mean((A(F_s^k) − A(F_t^k))²) over the last three stages, where
A(F) = Σ_c |F_c|², flattened and L2-normalised per sample.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F

from bdray.config import ConfigError, check_non_negative, check_positive_int
from bdray.methods.attack.threat import load_threat
from bdray.methods.common import seed_everything
from bdray.methods.erasing.clean_data import ErasingConfig, clean_subset, train_on_clean
from bdray.train.context import LocalContext, RunContext, unwrap


@dataclasses.dataclass
class NADConfig(ErasingConfig):
    betas: Tuple[float, ...] = (500.0, 1000.0, 1000.0)  # weights of the last three stages
    teacher_epochs: int = 10                             # fine-tuning epochs of the NAD teacher

    def validate(self) -> None:
        super().validate()
        if len(self.betas) != 3:
            raise ConfigError("betas", self.betas, "three weights (one per distilled stage)")
        for b in self.betas:
            check_non_negative("betas", b)
        check_positive_int("teacher_epochs", self.teacher_epochs)


def attention_map(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(features.pow(2).sum(dim=1).flatten(1), dim=1)


def train_nad(cfg: NADConfig, ctx: RunContext) -> Dict[str, Any]:
    threat = load_threat(cfg.backdoor, ctx)
    seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    teacher = copy.deepcopy(threat.model)
    # the teacher: fine-tuned in a throwaway local run on this device (no evaluation, reports or
    # checkpoints; under Ray Train each worker trains the same teacher itself)
    train_on_clean(cfg, LocalContext(ctx.device, verbose=False), threat, teacher, subset, report=False,
                   epochs=cfg.teacher_epochs)
    teacher.eval().requires_grad_(False)

    def attention_loss(model, x, _y):
        with torch.no_grad():
            t_stages = teacher.backbone.stages(teacher.normalize(x))[-3:]
        s_stages = unwrap(model).backbone.stages(unwrap(model).normalize(x))[-3:]
        loss = sum(b * (attention_map(s) - attention_map(t)).pow(2).mean()
                   for b, s, t in zip(cfg.betas, s_stages, t_stages))
        return loss, {"loss_attention": loss.detach()}

    student = copy.deepcopy(threat.model)
    metrics = train_on_clean(cfg, ctx, threat, student, subset, extra_loss=attention_loss)
    return {**metrics, "model": student}
