"""Batched, on-device augmentation: one tensor op per batch, no per-sample PIL path."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad by ``padding`` (reflect) and crop back to H×W at a random offset per image."""
    if padding <= 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4, mode="reflect")
    dev = images.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(dev)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(dev)
    rows = (torch.arange(h, device=dev)[None, :] + dy[:, None])  # n×h
    cols = (torch.arange(w, device=dev)[None, :] + dx[:, None])  # n×w
    batch = torch.arange(n, device=dev)[:, None, None]
    # gather a per-image window: index n, all channels, rows, cols
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    flip = (torch.rand(images.shape[0], generator=generator, device="cpu") < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(images: torch.Tensor, *, crop_padding: int, hflip: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
    out = random_crop(images, crop_padding, generator)
    if hflip:
        out = random_hflip(out, generator)
    return out
