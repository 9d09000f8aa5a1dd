"""Datasets as tensor-resident splits, by name: ``load_dataset("digits")``."""
from __future__ import annotations

from bdray.data.augment import augment, random_crop, random_hflip
from bdray.data.batches import augmented_batches, iterate_batches
from bdray.data.digits import load_digits
from bdray.data.files import load_cifar10, load_cifar100, load_gtsrb, load_mnist, load_npz
from bdray.data.splits import Dataset, Split, to_float, to_uint8, with_validation
from bdray.registry import Registry

DATASETS: Registry = Registry("dataset")
DATASETS.register("digits", load_digits)
DATASETS.register("mnist", load_mnist)
DATASETS.register("cifar10", load_cifar10)
DATASETS.register("cifar100", load_cifar100)
DATASETS.register("gtsrb", load_gtsrb)
DATASETS.register("npz", load_npz)

# Image shape (C, H, W) and class count of each dataset, known without loading it, so that
# configs can be validated (trigger fits the image, target class exists) before any work.
KNOWN_SHAPES = {
    "digits": ((1, 16, 16), 10),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "gtsrb": ((3, 32, 32), 43),
}


def load_dataset(name: str, data_root: str | None = None, download: bool = False,
                 val_fraction: float = 0.0) -> Dataset:
    """Load a registered dataset by name. ``npz`` takes the file path as ``data_root``;
    ``val_fraction`` > 0 holds that share of the training split out as ``val`` (``with_validation``)."""
    loader = DATASETS.get(name, field="dataset")
    data = loader(path=data_root) if name == "npz" else loader(root=data_root, download=download)
    return with_validation(data, val_fraction)


__all__ = ["DATASETS", "KNOWN_SHAPES", "Dataset", "Split", "augment", "augmented_batches", "iterate_batches", "load_dataset",
           "random_crop", "random_hflip", "to_float", "to_uint8", "with_validation"]
