"""Small pieces every training loop shares: seeding, schedules, threat-model checks."""
from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np
import torch

from bdray.attacks.specs import ATTACKS, attack_params
from bdray.config import ConfigError, check_choice
from bdray.data import DATASETS, KNOWN_SHAPES
from bdray.models import MODELS


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def step_lr_factor(progress: float, milestones: Sequence[float], gamma: float = 0.1) -> float:
    """Multiplicative lr factor at ``progress`` in [0, 1] for step decay at fractional milestones."""
    return gamma ** sum(progress >= m for m in milestones)


def cosine_lr_factor(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def validate_threat(dataset: str, model: str, attack: str, params: dict, target_class: int) -> None:
    """Names exist, attack parameters are valid, the trigger fits the images and the target class
    exists -- checked from the dataset's known shape without loading any data."""
    check_choice("dataset", dataset, DATASETS.names())
    check_choice("model", model, MODELS.names())
    check_choice("attack", attack, ATTACKS.names())
    spec = attack_params(attack, params)
    if dataset in KNOWN_SHAPES:
        shape, num_classes = KNOWN_SHAPES[dataset]
        spec.check_fits(shape)
        if not 0 <= target_class < num_classes:
            raise ConfigError("target_class", target_class,
                              f"a class of {dataset}: an integer in [0, {num_classes - 1}]")
