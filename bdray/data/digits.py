"""``digits``: the embedded default dataset.

scikit-learn ships 1,797 real 8×8 handwritten digits (values 0..16) inside its wheel, so this
needs no download.  We upscale them bilinearly to 16×16 uint8 and make a fixed, seeded,
stratified 75/25 train/test split.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bdray.data.splits import Dataset, Split, channel_stats, stratified_split

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25


def load_digits(size: int = 16, **_ignored) -> Dataset:
    from sklearn.datasets import load_digits as sk_load_digits

    if size < 8:
        raise ValueError(f"digits size must be >= 8, got {size}")
    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).div(16.0).unsqueeze(1)  # N×1×8×8
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    train_idx, test_idx = stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    train = Split(images[train_idx], labels[train_idx])
    mean, std = channel_stats(train.images)
    return Dataset(name="digits", train=train, test=Split(images[test_idx], labels[test_idx]),
                   class_names=tuple(str(i) for i in range(10)), mean=mean, std=std, hflip=False)
