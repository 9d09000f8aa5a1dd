"""Tensor-resident datasets: whole splits live on one device as uint8 NCHW tensors."""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

import torch


@dataclasses.dataclass
class Split:
    """One split: ``images`` uint8 N×C×H×W, ``labels`` int64 N (same device)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 N×C×H×W, got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise ValueError(f"labels must be 1-D with one label per image, got "
                             f"{tuple(self.labels.shape)} for {len(self.images)} images")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device, non_blocking=True), self.labels.to(device, non_blocking=True))

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.images[index], self.labels[index])


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(255.0)


def to_uint8(images_float: torch.Tensor) -> torch.Tensor:
    return images_float.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


@dataclasses.dataclass
class Dataset:
    """Train and test splits (and, when carved, a validation split held out of the training data)
    plus what a model needs to know about them."""

    name: str
    train: Split
    test: Split
    class_names: Tuple[str, ...]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    hflip: bool = False  # whether horizontal flips are a label-preserving augmentation
    val: Optional[Split] = None  # held out of ``train``: what sweeps choose hyperparameters on

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device | str) -> "Dataset":
        return dataclasses.replace(self, train=self.train.to(device), test=self.test.to(device),
                                   val=None if self.val is None else self.val.to(device))


# The validation split is drawn with its own fixed seed, not the run's: every method and every seed
# replica of a sweep (same dataset, same fraction) holds out the same images.
VAL_SPLIT_SEED = 0


def with_validation(data: Dataset, fraction: float) -> Dataset:
    """``data`` with a stratified ``fraction`` of its training split moved into ``val`` (no image
    is in both); ``fraction == 0`` returns ``data`` unchanged.  Normalisation constants stay those
    of the whole training split, so a model's input scaling does not depend on the fraction."""
    if fraction <= 0:
        return data
    train_idx, val_idx = stratified_split(data.train.labels.cpu(), fraction, VAL_SPLIT_SEED)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(f"val_fraction={fraction} leaves an empty split of {len(data.train)} training images")
    device = data.train.images.device
    return dataclasses.replace(data, train=data.train.subset(train_idx.to(device)),
                               val=data.train.subset(val_idx.to(device)))


def channel_stats(images_uint8: torch.Tensor) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and std of uint8 N×C×H×W images, in [0, 1] units."""
    x = images_uint8.double().div(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified train/test indices: every class keeps the same test share."""
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values


def nhwc_to_nchw(array) -> torch.Tensor:
    """uint8 N×H×W or N×H×W×C array -> uint8 N×C×H×W tensor."""
    t = torch.as_tensor(array)
    if t.dim() == 3:
        t = t.unsqueeze(-1)
    return t.permute(0, 3, 1, 2).contiguous()


def default_class_names(num_classes: int) -> Tuple[str, ...]:
    return tuple(str(i) for i in range(num_classes))


def check_labels(labels: torch.Tensor, class_names: Sequence[str], where: str) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"{where}: labels must lie in [0, {len(class_names) - 1}], "
                         f"found [{int(labels.min())}, {int(labels.max())}]")
