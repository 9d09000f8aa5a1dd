"""The types of attribute datasets (``bdray.data.attributes``), shared by the registry of named
datasets and the reader of attribute files (``bdray.data.attribute_files``): what a dataset offers
(``AttributeSource``), its splits, and the check of a request against what it offers."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import torch

from bdray.config import ConfigError, check_choice, check_number


@dataclasses.dataclass(frozen=True)
class AttributeSource:
    """What a dataset offers, known without loading it (for validation before any work)."""
    targets: Tuple[str, ...]
    biases: Tuple[str, ...]
    default_targets: Tuple[str, ...]
    default_bias: str
    image_shape: Optional[Tuple[int, int, int]]  # None: set by ``image_size``


@dataclasses.dataclass
class AttributeSplit:
    images: torch.Tensor  # uint8 N×C×H×W
    y: torch.Tensor       # N×K binary target attributes (one column per task)
    a: torch.Tensor       # N binary bias attribute

    def __post_init__(self) -> None:
        if self.y.dim() == 1:
            self.y = self.y[:, None]
        self.y, self.a = self.y.long(), self.a.long()
        if not (len(self.images) == len(self.y) == len(self.a)):
            raise ValueError(f"images, y and a differ in length: {len(self.images)}, {len(self.y)}, {len(self.a)}")

    def __len__(self) -> int:
        return len(self.a)

    def to(self, device) -> "AttributeSplit":
        return AttributeSplit(self.images.to(device), self.y.to(device), self.a.to(device))

    def subset(self, index: torch.Tensor) -> "AttributeSplit":
        return AttributeSplit(self.images[index], self.y[index], self.a[index])


@dataclasses.dataclass
class AttributeDataset:
    name: str
    train: AttributeSplit
    test: AttributeSplit
    target_names: Tuple[str, ...]
    bias_name: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    hflip: bool = False

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_tasks(self) -> int:
        return len(self.target_names)

    def to(self, device) -> "AttributeDataset":
        return dataclasses.replace(self, train=self.train.to(device), test=self.test.to(device))


def as_targets(targets) -> Tuple[str, ...]:
    return (targets,) if isinstance(targets, str) else tuple(targets)


def check_request(source: AttributeSource, dataset: str, targets, bias: Optional[str],
                  image_size: int = 64) -> Tuple[int, int, int]:
    """Names exist in ``source`` and do not clash; returns the image shape the request will produce."""
    targets = as_targets(targets)
    if not targets:
        raise ConfigError("targets", targets, f"at least one target attribute of {dataset}")
    for t in targets:
        check_choice("targets", t, source.targets)
    if len(set(targets)) != len(targets):
        raise ConfigError("targets", targets, "distinct attribute names")
    if bias is not None:
        check_choice("bias_attribute", bias, source.biases)
        if bias in targets:
            raise ConfigError("targets", targets, f"attributes other than the bias attribute {bias!r}")
    if source.image_shape is not None:
        return source.image_shape
    check_number("image_size", image_size, low=8, integer=True)
    return (3, image_size, image_size)
