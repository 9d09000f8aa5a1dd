"""Batch iteration over tensor-resident data (the airbench way: no DataLoader)."""
from __future__ import annotations

from typing import Iterator

import torch

from bdray.data.augment import augment
from bdray.data.splits import to_float


def iterate_batches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                    drop_last: bool = False, rank: int = 0, world_size: int = 1,
                    device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Yield index tensors covering ``range(n)``; with ``world_size`` > 1 each rank takes a
    disjoint, equally sized share of every epoch's permutation.  The permutation is drawn on the
    CPU (the same on every device) and, with ``device``, copied there once per epoch, so batches
    index device-resident data with no per-step copy."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if world_size > 1:
        per_rank = n // world_size
        order = order[rank * per_rank:(rank + 1) * per_rank]
    if device is not None:
        order = order.to(device, non_blocking=True)
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]



def augmented_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                      generator: torch.Generator, crop_padding: int, hflip: bool, rank: int = 0,
                      world_size: int = 1) -> Iterator[tuple]:
    """One epoch of shuffled training batches ``(x, y)`` from device-resident uint8 images: an
    index gather, the batched augmentation and a float conversion, all on the data's device."""
    for idx in iterate_batches(len(labels), batch_size, shuffle=True, generator=generator, rank=rank,
                               world_size=world_size, device=images.device):
        # crop/flip move pixels only: done on the uint8 batch (a quarter of the bytes), then to float
        yield to_float(augment(images[idx], crop_padding=crop_padding, hflip=hflip, generator=generator)), labels[idx]


def batched_logits(model: torch.nn.Module, images_float: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """``model``'s logits of every image, in batches (no gradients).  ``batch_size`` None: 256 on
    a CPU, where larger batches fall out of the caches (a WRN-16-1 forward pass on 2 cores: 750
    img/s at 1024, 2,100 at 128-256), 1024 on an accelerator.  Batches follow the model's memory
    format (channels_last weights get channels_last inputs)."""
    if batch_size is None:
        batch_size = 256 if images_float.device.type == "cpu" else 1024
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    channels_last = (weight is not None and not weight.is_contiguous()
                     and weight.is_contiguous(memory_format=torch.channels_last))
    outs = []
    with torch.no_grad():
        for start in range(0, len(images_float), batch_size):
            chunk = images_float[start:start + batch_size]
            if channels_last:
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            outs.append(model(chunk))
    return torch.cat(outs)
