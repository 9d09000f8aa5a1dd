"""Attribute datasets for debiasing (DBA, methods.md §3.6): every sample has a binary target
attribute Y and a binary bias attribute A.

``digits_biased`` (embedded, no download) is built from the embedded digits: Y is a property of
the digit (``target``: ``ge5`` = digit >= 5, ``even``, ``prime``), and A is rendered into the image
as the stroke colour (A = 1 orange, A = 0 azure).  In the training split A agrees with Y for a
``bias_strength`` share of each Y class (0.5 = no bias, 1 = A determines Y); in the test split A
is independent of Y (each Y class split evenly between the two colours), so a model that learned
the colour instead of the digit shows up as unfair.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Tuple

import torch

from bdray.config import ConfigError, check_choice, check_rate
from bdray.data.splits import channel_stats

STROKE_COLOURS = {0: (0.1, 0.6, 1.0), 1: (1.0, 0.6, 0.1)}  # A = 0 azure, A = 1 orange

DIGIT_TARGETS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ge5": lambda d: (d >= 5).long(),
    "even": lambda d: (d % 2 == 0).long(),
    "prime": lambda d: ((d == 2) | (d == 3) | (d == 5) | (d == 7)).long(),
}


@dataclasses.dataclass
class AttributeSplit:
    images: torch.Tensor  # uint8 N×C×H×W
    y: torch.Tensor       # binary target attribute
    a: torch.Tensor       # binary bias attribute

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass
class AttributeDataset:
    name: str
    train: AttributeSplit
    test: AttributeSplit
    target_name: str
    bias_name: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def assign_bias(y: torch.Tensor, agree_share: float, seed: int) -> torch.Tensor:
    """A per sample: in every Y class exactly ``round(agree_share · n)`` samples (drawn by seed) get
    A = Y, the rest A = 1 − Y."""
    gen = torch.Generator().manual_seed(seed)
    a = 1 - y.clone()
    for value in (0, 1):
        members = torch.nonzero(y == value).flatten()
        k = int(round(agree_share * len(members)))
        a[members[torch.randperm(len(members), generator=gen)[:k]]] = value
    return a


def colour_strokes(gray_uint8: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """N×1×H×W grey digits → N×3×H×W, each stroke tinted by its sample's A."""
    colours = torch.tensor([STROKE_COLOURS[0], STROKE_COLOURS[1]])[a]  # N×3
    out = gray_uint8.float() * colours[:, :, None, None]
    return out.round().clamp(0, 255).to(torch.uint8)


def load_digits_biased(target: str = "ge5", bias_strength: float = 0.9, seed: int = 0) -> AttributeDataset:
    from bdray.data.digits import load_digits

    check_choice("target", target, DIGIT_TARGETS)
    check_rate("bias_strength", bias_strength)
    digits = load_digits()
    splits = {}
    for name, split, share in (("train", digits.train, bias_strength), ("test", digits.test, 0.5)):
        y = DIGIT_TARGETS[target](split.labels)
        a = assign_bias(y, share, seed + (0 if name == "train" else 1))
        splits[name] = AttributeSplit(colour_strokes(split.images, a), y, a)
    mean, std = channel_stats(splits["train"].images)
    return AttributeDataset(name="digits_biased", train=splits["train"], test=splits["test"],
                            target_name=target, bias_name="stroke_colour", mean=mean, std=std)


ATTRIBUTE_DATASETS = {"digits_biased": load_digits_biased}


def load_attribute_dataset(name: str, **kwargs) -> AttributeDataset:
    if name not in ATTRIBUTE_DATASETS:
        raise ConfigError("dataset", name, f"one of {sorted(ATTRIBUTE_DATASETS)}")
    return ATTRIBUTE_DATASETS[name](**kwargs)
