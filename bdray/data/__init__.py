"""Datasets as tensor-resident splits, by name: ``load_dataset("digits")``."""
from __future__ import annotations

from bdray.data.augment import augment, random_crop, random_hflip
from bdray.data.batches import augmented_batches, iterate_batches
from bdray.data.digits import load_digits
from bdray.data.files import load_cifar10, load_cifar100, load_gtsrb, load_mnist, load_npz
from bdray.data.folders import load_folder
from bdray.data.splits import Dataset, Split, to_float, to_uint8, with_validation
from bdray.registry import Registry

DATASETS: Registry = Registry("dataset")
DATASETS.register("digits", load_digits, description="embedded 16×16 handwritten digits, no download")
DATASETS.register("mnist", load_mnist, description="torchvision")
DATASETS.register("cifar10", load_cifar10, description="torchvision")
DATASETS.register("cifar100", load_cifar100, description="torchvision")
DATASETS.register("gtsrb", load_gtsrb, description="torchvision, resized to 32×32")
DATASETS.register("npz", load_npz, description="your arrays: --data-root FILE.npz")
DATASETS.register("folder", load_folder, description="your image files: --data-root a folder or archive of "
                                                     "train/<class>/*, test/<class>/*")

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
                 val_fraction: float = 0.0, image_size: int | None = None) -> Dataset:
    """Load a registered dataset by name. ``npz`` takes the file path as ``data_root``, ``folder``
    a folder or archive of class folders (resized to ``image_size``² when given);
    ``val_fraction`` > 0 holds that share of the training split out as ``val`` (``with_validation``)."""
    loader = DATASETS.get(name, field="dataset")
    if image_size is not None and name != "folder":
        from bdray.config import ConfigError

        raise ConfigError("image_size", image_size, "None unless dataset is folder (only class folders are resized)")
    if name == "npz":
        data = loader(path=data_root)
    elif name == "folder":
        data = loader(root=data_root, image_size=image_size)
    else:
        data = loader(root=data_root, download=download)
    return with_validation(data, val_fraction)


def dataset_shape(name: str, data_root: str | None = None, image_size: int | None = None):
    """``((C, H, W), class count or None)`` of a dataset without loading its tensors: the known
    shapes, an npz file's array header, or a class-folder dataset's cached summary (decoded into
    the cache on first use, so that its errors come before any work); None when unknown."""
    if name in KNOWN_SHAPES:
        return KNOWN_SHAPES[name]
    if name == "folder":
        from bdray.data.folders import folder_info

        shape, classes = folder_info(data_root, image_size)
        return shape, len(classes)
    if name == "npz" and data_root:
        from bdray.data.files import npz_array_shapes

        shapes = npz_array_shapes(data_root)  # a missing file is a ConfigError naming data_root
        shape = shapes.get("x_train", shapes.get("x"))
        if shape is None:
            return None
        return ((1, shape[1], shape[2]) if len(shape) == 3 else (shape[3], shape[1], shape[2])), None
    return None


__all__ = ["DATASETS", "KNOWN_SHAPES", "Dataset", "dataset_shape", "Split", "augment", "augmented_batches", "iterate_batches", "load_dataset",
           "random_crop", "random_hflip", "to_float", "to_uint8", "with_validation"]
