"""Batch sources for the engine's updates: functions of the epoch's generator that yield
``Batch``es from a tensor-resident split (no DataLoader).

Each batch is an index gather of the uint8 images, the batched augmentation on the uint8 batch
(crop and flip only move pixels) and one conversion to float, all on the data's device.  The
shuffling and the augmentation draw from the epoch's generator, in batch order.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from bdray.data import Split, augment, iterate_batches, to_float
from bdray.train.context import RunContext
from bdray.train.engine import Batch

Source = Callable[[torch.Generator], Iterator[Batch]]


def gather(split: Split, idx: torch.Tensor, gen: torch.Generator, crop_padding: int, hflip: bool,
           augmented: bool = True) -> Batch:
    """``split[idx]`` (``idx`` on the data's device) as a float batch, augmented unless
    ``augmented=False``."""
    images = split.images[idx]
    if augmented:
        images = augment(images, crop_padding=crop_padding, hflip=hflip, generator=gen)
    return Batch(to_float(images), split.labels[idx], idx)


def index_batches(indices: torch.Tensor, batch_size: int, ctx: RunContext, gen: torch.Generator,
                  device: torch.device) -> Iterator[torch.Tensor]:
    """Batches of ``indices`` (on ``device``) in one shuffled pass, this rank's share under DDP: the
    permutation is drawn on the CPU and copied to the device once, so no step waits on a host copy."""
    on_device = indices.to(device)
    for pos in iterate_batches(len(indices), batch_size, shuffle=True, generator=gen, rank=ctx.rank,
                               world_size=ctx.world_size, device=device):
        yield on_device[pos]


def shuffled(split: Split, indices: torch.Tensor, batch_size: int, ctx: RunContext, *, crop_padding: int,
             hflip: bool, augmented: bool = True) -> Source:
    """One shuffled pass over ``split[indices]`` per epoch; under DDP each rank takes its share."""
    def source(gen: torch.Generator) -> Iterator[Batch]:
        for idx in index_batches(indices, batch_size, ctx, gen, split.images.device):
            yield gather(split, idx, gen, crop_padding, hflip, augmented)
    return source


def cycled(split: Split, indices: torch.Tensor, batch_size: int, ctx: RunContext, *, crop_padding: int,
           hflip: bool) -> Source:
    """Shuffled passes over ``split[indices]``, reshuffled after each, for as long as the epoch asks
    (for an update that follows another update's batches, e.g. PT's ascent on D_s); nothing when
    this rank's share is empty."""
    one_pass = shuffled(split, indices, batch_size, ctx, crop_padding=crop_padding, hflip=hflip)

    def source(gen: torch.Generator) -> Iterator[Batch]:
        if len(indices) // max(ctx.world_size, 1) == 0:
            return
        while True:
            yield from one_pass(gen)
    return source


def repeated(split: Split, samples_per_epoch: int, batch_size: int, *, crop_padding: int, hflip: bool) -> Source:
    """``samples_per_epoch`` samples of a small ``split`` (a defender's clean subset), repeated as
    often as needed and shuffled, in batches."""
    n = len(split)

    def source(gen: torch.Generator) -> Iterator[Batch]:
        reps = -(-samples_per_epoch // n)
        order = torch.arange(n).repeat(reps)[torch.randperm(n * reps, generator=gen)][:samples_per_epoch]
        order = order.to(split.images.device)
        for start in range(0, len(order), batch_size):
            yield gather(split, order[start:start + batch_size], gen, crop_padding, hflip)
    return source
