"""Batch iteration over tensor-resident data (the airbench way: no DataLoader)."""
from __future__ import annotations

from typing import Iterator

import torch


def iterate_batches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                    drop_last: bool = False, rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """Yield index tensors (CPU) covering ``range(n)``; with ``world_size`` > 1 each rank takes
    a disjoint, equally sized share of every epoch's permutation."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if world_size > 1:
        per_rank = n // world_size
        order = order[rank * per_rank:(rank + 1) * per_rank]
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]




def batched_logits(model: torch.nn.Module, images_float: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    outs = []
    with torch.no_grad():
        for start in range(0, len(images_float), batch_size):
            outs.append(model(images_float[start:start + batch_size]))
    return torch.cat(outs)
