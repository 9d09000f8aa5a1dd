"""Small pieces every method shares: seeding and threat-model checks (lr schedules: ``bdray.train.schedules``)."""
from __future__ import annotations

import random

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
