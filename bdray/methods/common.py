"""Small pieces every method shares: seeding and threat-model checks (lr schedules: ``bdray.train.schedules``)."""
from __future__ import annotations

import random

import numpy as np
import torch

from bdray.attacks.specs import ATTACKS, attack_params
from bdray.config import ConfigError, check_choice
from bdray.data import DATASETS, dataset_shape
from bdray.models import MODELS


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def validate_threat(dataset: str, model: str, attack: str, params: dict, target_class: int,
                    data_root: str | None = None, image_size: int | None = None) -> None:
    """Names exist, attack parameters are valid, the trigger fits the images and the target class
    exists -- checked from the dataset's known shape (a class-folder dataset's cached summary)
    without loading any tensors."""
    check_choice("dataset", dataset, DATASETS.names())
    check_choice("model", model, MODELS.names())
    check_choice("attack", attack, ATTACKS.names())
    spec = attack_params(attack, params)
    known = dataset_shape(dataset, data_root, image_size) if dataset != "npz" else None
    if known is not None:
        shape, num_classes = known
        spec.check_fits(shape)
        if not 0 <= target_class < num_classes:
            raise ConfigError("target_class", target_class,
                              f"a class of {dataset}: an integer in [0, {num_classes - 1}]")
