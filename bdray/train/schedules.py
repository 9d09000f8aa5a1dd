"""Learning-rate schedules as factors of the phase's progress in [0, 1], and setting an lr."""
from __future__ import annotations

import math
from typing import Sequence

import torch


def step_lr_factor(progress: float, milestones: Sequence[float], gamma: float = 0.1) -> float:
    """Multiplicative lr factor at ``progress`` in [0, 1] for step decay at fractional milestones."""
    return gamma ** sum(progress >= m for m in milestones)


def cosine_lr_factor(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
