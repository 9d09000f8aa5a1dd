"""Batched, on-device augmentation: one tensor op per batch, no per-sample PIL path.

``augment`` (random crop with reflect padding, then a random horizontal flip) is a single gather:
each output pixel's source position in the padded batch is computed for the whole batch at once;
the result is in channels_last memory format.
``random_crop`` / ``random_hflip`` are the same operations one at a time; ``augment`` draws the
same random numbers in the same order, so its output equals ``random_hflip(random_crop(x))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _offsets(n: int, padding: int, generator: torch.Generator | None, device) -> tuple:
    """Per-image crop offsets (dy, dx) in [0, 2·padding], drawn on the CPU (the same draws on
    every device)."""
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(device)
    return dy, dx


def _flips(n: int, generator: torch.Generator | None, p: float, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator, device="cpu") < p).to(device)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad by ``padding`` (reflect) and crop back to H×W at a random offset per image."""
    if padding <= 0:
        return images
    n, c, h, w = images.shape
    dy, dx = _offsets(n, padding, generator, images.device)
    windows = F.pad(images, (padding,) * 4, mode="reflect").unfold(2, h, 1).unfold(3, w, 1)  # n×c×(2p+1)²×h×w view
    return windows[torch.arange(n, device=images.device), :, dy, dx].contiguous()


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    flip = _flips(images.shape[0], generator, p, images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(images: torch.Tensor, *, crop_padding: int, hflip: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (reflect padding ``crop_padding``) then, with ``hflip``, a random horizontal
    flip -- one gather over the padded batch."""
    if crop_padding <= 0 and not hflip:
        return images
    n, c, h, w = images.shape
    dev = images.device
    pad = max(crop_padding, 0)
    if pad:
        dy, dx = _offsets(n, pad, generator, dev)
        images = F.pad(images, (pad,) * 4, mode="reflect")
    else:
        dy = dx = torch.zeros(n, dtype=torch.long, device=dev)
    cols = torch.arange(w, device=dev).expand(n, w)
    if hflip:
        cols = torch.where(_flips(n, generator, 0.5, dev)[:, None], w - 1 - cols, cols)
    rows = torch.arange(h, device=dev)[None, :] + dy[:, None]                          # n×h
    source = rows[:, :, None] * (w + 2 * pad) + (cols + dx[:, None])[:, None, :]     # n×h×w, in the padded plane
    # gather in (N, H·W, C) order, so the result is channels_last memory (strides H·W·C, 1, W·C, C):
    # oneDNN's and cuDNN's convolutions run faster on it, and it is the exact layout the earlier
    # crop returned, which matters for reproducing earlier runs: convolution kernels, and so the
    # float rounding of a whole training, follow the input's strides
    planes = images.permute(0, 2, 3, 1).reshape(n, -1, c)
    out = planes.gather(1, source.view(n, h * w, 1).expand(n, h * w, c))
    return out.view(n, h, w, c).permute(0, 3, 1, 2)
