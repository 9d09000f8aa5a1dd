"""Attribute datasets for debiasing (DBA, methods.md §3.6): every sample has one or several binary
target attributes Y (``y``: N×K, one column per task) and one binary bias attribute A (``a``: N).

- ``digits_biased`` (embedded, no download) is built from the embedded digits: each target is a
  property of the digit (``ge5`` = digit >= 5, ``even``, ``prime``), and A is rendered into the
  image as the stroke colour (A = 1 orange, A = 0 azure).  In the training split A agrees with the
  *first* target for a ``bias_strength`` share of each of its classes (0.5 = no bias, 1 = A
  determines Y); in the test split A is independent of Y (each class split evenly between the
  colours), so a model that learned the colour instead of the digit shows up as unfair.
- ``celeba``: any of its 40 attributes as targets, ``Male`` or ``Young`` as bias (``bdray.data.faces``).
- ``utkface``: ``age_gt35`` (or ``female``) as target, ``race_white`` (or ``female``) as bias; 7:3 split.
- ``npz``: a user's own attribute file (images, ``y`` targets, ``a`` bias attributes;
  ``bdray.data.attribute_files``).

``check_attribute_request`` validates names and sizes without loading anything.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from bdray.config import check_choice, check_rate
from bdray.data.attribute_files import load_npz_attributes, npz_attribute_source
from bdray.data.attribute_schema import AttributeDataset, AttributeSource, AttributeSplit, as_targets, check_request
from bdray.data.faces import CELEBA_ATTRIBUTES, CELEBA_BIASES, UTKFACE_ATTRIBUTES
from bdray.data.splits import channel_stats, nhwc_to_nchw

STROKE_COLOURS = {0: (0.1, 0.6, 1.0), 1: (1.0, 0.6, 0.1)}  # A = 0 azure, A = 1 orange

DIGIT_TARGETS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ge5": lambda d: (d >= 5).long(),
    "even": lambda d: (d % 2 == 0).long(),
    "prime": lambda d: ((d == 2) | (d == 3) | (d == 5) | (d == 7)).long(),
}


SOURCES: Dict[str, AttributeSource] = {
    "digits_biased": AttributeSource(tuple(DIGIT_TARGETS), ("stroke_colour",), ("ge5",), "stroke_colour", (3, 16, 16)),
    "celeba": AttributeSource(CELEBA_ATTRIBUTES, CELEBA_BIASES, ("Wearing_Lipstick",), "Male", None),
    "utkface": AttributeSource(("age_gt35", "female"), ("race_white", "female"), ("age_gt35",), "race_white", None),
}
assert set(SOURCES["utkface"].targets + SOURCES["utkface"].biases) <= set(UTKFACE_ATTRIBUTES)


ATTRIBUTE_DATASET_NAMES = tuple(SOURCES) + ("npz",)


def attribute_source(dataset: str, data_root=None) -> AttributeSource:
    """What ``dataset`` offers; for ``npz`` read from the file's headers (``bdray.data.attribute_files``)."""
    check_choice("dataset", dataset, ATTRIBUTE_DATASET_NAMES)
    if dataset == "npz":
        return npz_attribute_source(data_root)[0]
    return SOURCES[dataset]


def check_attribute_request(dataset: str, targets, bias: Optional[str], image_size: int = 64,
                            data_root=None) -> Tuple[int, int, int]:
    """Names exist and do not clash; returns the image shape the request will produce."""
    return check_request(attribute_source(dataset, data_root), dataset, targets, bias, image_size)


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


def load_digits_biased(targets=("ge5",), bias: Optional[str] = None, bias_strength: float = 0.9, seed: int = 0,
                       **_ignored) -> AttributeDataset:
    from bdray.data.digits import load_digits

    targets = as_targets(targets)
    check_attribute_request("digits_biased", targets, bias)
    check_rate("bias_strength", bias_strength)
    digits = load_digits()
    splits = {}
    for name, split, share in (("train", digits.train, bias_strength), ("test", digits.test, 0.5)):
        y = torch.stack([DIGIT_TARGETS[t](split.labels) for t in targets], 1)
        a = assign_bias(y[:, 0], share, seed + (0 if name == "train" else 1))
        splits[name] = AttributeSplit(colour_strokes(split.images, a), y, a)
    mean, std = channel_stats(splits["train"].images)
    return AttributeDataset(name="digits_biased", train=splits["train"], test=splits["test"],
                            target_names=targets, bias_name="stroke_colour", mean=mean, std=std)


def _from_arrays(name: str, arrays, targets, bias: str, hflip: bool) -> AttributeDataset:
    splits = {}
    for split, (images, attrs) in arrays.items():
        y = torch.from_numpy(np.stack([attrs[t] for t in targets], 1).astype(np.int64))
        splits[split] = AttributeSplit(nhwc_to_nchw(images), y, torch.from_numpy(attrs[bias].astype(np.int64)))
        if len(splits[split]) == 0:
            raise ValueError(f"{name}: the {split} split is empty")
    train_images = splits["train"].images
    if len(train_images) > 20_000:  # statistics from a fixed subsample: float64 copies of CelebA are 15 GB
        train_images = train_images[torch.randperm(len(train_images), generator=torch.Generator().manual_seed(0))[:20_000]]
    mean, std = channel_stats(train_images)
    return AttributeDataset(name=name, train=splits["train"], test=splits["test"], target_names=targets,
                            bias_name=bias, mean=mean, std=std, hflip=hflip)


def load_celeba_attributes(targets=("Wearing_Lipstick",), bias: Optional[str] = None, data_root=None,
                           download: bool = False, image_size: int = 64, **_ignored) -> AttributeDataset:
    from bdray.data.faces import load_celeba_arrays

    targets, bias = as_targets(targets), bias or SOURCES["celeba"].default_bias
    check_attribute_request("celeba", targets, bias, image_size)
    return _from_arrays("celeba", load_celeba_arrays(data_root, download, image_size), targets, bias, hflip=False)


def load_utkface_attributes(targets=("age_gt35",), bias: Optional[str] = None, data_root=None, image_size: int = 64,
                            seed: int = 0, **_ignored) -> AttributeDataset:
    from bdray.data.faces import load_utkface_arrays

    targets, bias = as_targets(targets), bias or SOURCES["utkface"].default_bias
    check_attribute_request("utkface", targets, bias, image_size)
    arrays = load_utkface_arrays(data_root, image_size=image_size, seed=seed)
    return _from_arrays("utkface", arrays, targets, bias, hflip=False)


ATTRIBUTE_DATASETS = {"digits_biased": load_digits_biased, "celeba": load_celeba_attributes,
                      "utkface": load_utkface_attributes, "npz": load_npz_attributes}


def load_attribute_dataset(name: str, **kwargs) -> AttributeDataset:
    """``load_attribute_dataset("digits_biased", targets=("ge5",), bias_strength=0.9)``; ``target=``
    (one name) is accepted too."""
    check_choice("dataset", name, ATTRIBUTE_DATASETS)
    if "target" in kwargs:
        kwargs["targets"] = as_targets(kwargs.pop("target"))
    return ATTRIBUTE_DATASETS[name](**kwargs)
