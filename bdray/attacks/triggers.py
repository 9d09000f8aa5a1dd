"""Trigger functions: pure functions of a float N×C×H×W batch in [0, 1] and explicit parameters.

Nothing here keeps state or draws randomness implicitly; fixed patterns (Blend noise, the WaNet
warping field) are made by the seeded ``make_*`` helpers and passed in.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F

LOCATIONS = ("bottom_right", "bottom_left", "top_right", "top_left", "center")


def checkerboard(size: int, channels: int) -> torch.Tensor:
    """A C×k×k checkerboard of 0/1 whose bottom-right pixel is 1."""
    i = torch.arange(size)
    board = ((i[:, None] + i[None, :] - 2 * (size - 1)) % 2 == 0).float()  # corner (k-1, k-1) -> 1
    return board.expand(channels, size, size).clone()


def solid(size: int, channels: int, color: float = 1.0) -> torch.Tensor:
    return torch.full((channels, size, size), float(color))


def patch_position(height: int, width: int, size: int, location: str, margin: int) -> Tuple[int, int]:
    """(top, left) of a ``size``×``size`` patch at a named location with a margin in pixels."""
    if location == "bottom_right":
        return height - margin - size, width - margin - size
    if location == "bottom_left":
        return height - margin - size, margin
    if location == "top_right":
        return margin, width - margin - size
    if location == "top_left":
        return margin, margin
    if location == "center":
        return (height - size) // 2, (width - size) // 2
    raise ValueError(f"unknown patch location {location!r}; expected one of {LOCATIONS}")


def amplified_positions(height: int, width: int, size: int, margin: int, times: int) -> List[Tuple[int, int]]:
    """Where the amplified trigger (DHBE Table 6) is pasted: ×1 bottom-right, ×4 the four corners,
    ×9 the corners, the four edge midpoints and the centre."""
    lo_y, hi_y = margin, height - margin - size
    lo_x, hi_x = margin, width - margin - size
    mid_y, mid_x = (height - size) // 2, (width - size) // 2
    if times == 1:
        return [(hi_y, hi_x)]
    corners = [(lo_y, lo_x), (lo_y, hi_x), (hi_y, lo_x), (hi_y, hi_x)]
    if times == 4:
        return corners
    if times == 9:
        return corners + [(lo_y, mid_x), (hi_y, mid_x), (mid_y, lo_x), (mid_y, hi_x), (mid_y, mid_x)]
    raise ValueError(f"amplification must be 1, 4 or 9, got {times}")


def paste_patch(images: torch.Tensor, patch: torch.Tensor, positions: List[Tuple[int, int]]) -> torch.Tensor:
    """Copy of ``images`` with ``patch`` (C×k×k) pasted at each (top, left)."""
    out = images.clone()
    k_h, k_w = patch.shape[-2:]
    p = patch.to(images.device, images.dtype)
    for top, left in positions:
        out[:, :, top:top + k_h, left:left + k_w] = p
    return out


def blend(images: torch.Tensor, pattern: torch.Tensor, alpha: float) -> torch.Tensor:
    """x' = (1 - α)·x + α·pattern, with one fixed pattern (C×H×W) for every image."""
    return (1.0 - alpha) * images + alpha * pattern.to(images.device, images.dtype)


def make_noise_pattern(shape: Tuple[int, int, int], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen)


def sig(images: torch.Tensor, delta: float, frequency: float) -> torch.Tensor:
    """x' = clip(x + v), v(i, j) = δ·sin(2π·j·f / m) along the width m."""
    width = images.shape[-1]
    j = torch.arange(width, device=images.device, dtype=images.dtype)
    v = delta * torch.sin(2 * torch.pi * j * frequency / width)
    return (images + v).clamp(0.0, 1.0)


def make_wanet_grid(height: int, width: int, grid_size: int, strength: float, seed: int) -> torch.Tensor:
    """The fixed WaNet warping grid (1×H×W×2) for ``grid_sample``."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 2, grid_size, grid_size, generator=gen) * 2 - 1
    noise = noise / noise.abs().mean()
    field = F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys = torch.linspace(-1, 1, height)
    xs = torch.linspace(-1, 1, width)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    identity = torch.stack((gx, gy), dim=-1)[None]
    return (identity + strength * field / height).clamp(-1, 1)


def warp(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    g = grid.to(images.device, images.dtype).expand(images.shape[0], -1, -1, -1)
    return F.grid_sample(images, g, mode="bilinear", padding_mode="border", align_corners=True).clamp(0, 1)


def wanet_noise_grid(grid: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """WaNet's noise mode: the warping grid plus U(-1, 1)/H per image (N×H×W×2)."""
    height = grid.shape[1]
    jitter = (torch.rand(n, *grid.shape[1:], generator=generator) * 2 - 1) / height
    return (grid.expand(n, -1, -1, -1) + jitter.to(grid.device)).clamp(-1, 1)
