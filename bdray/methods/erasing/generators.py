"""DHBE's two generators (methods.md §3.1)."""
from __future__ import annotations

import torch
from torch import nn


class SampleGenerator(nn.Module):
    """z -> an already-normalised synthetic image C×H×W.

    linear to width×(H/4)×(W/4) -> BN -> 2 × (upsample ×2 -> conv3×3 -> BN -> LeakyReLU 0.2)
    (width -> width -> width/2 channels) -> conv3×3 to C -> tanh -> BN without affine.
    """

    def __init__(self, noise_dim: int, image_shape, width: int = 128):
        super().__init__()
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"the sample generator needs H and W divisible by 4, got {h}×{w}")
        self.init_hw = (h // 4, w // 4)
        self.width = width
        self.linear = nn.Linear(noise_dim, width * self.init_hw[0] * self.init_hw[1])
        self.bn0 = nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2), nn.Conv2d(width, width // 2, 3, padding=1, bias=False),
            nn.BatchNorm2d(width // 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width // 2, c, 3, padding=1), nn.Tanh(), nn.BatchNorm2d(c, affine=False),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.linear(z).view(z.shape[0], self.width, *self.init_hw)
        return self.blocks(self.bn0(x))


class TriggerGenerator(nn.Module):
    """z2 -> an s×s patch in [-1, 1]: linear to 64×s×s -> BN -> conv3×3 to C -> BN (no affine) -> tanh."""

    def __init__(self, noise_dim: int, channels: int, size: int, width: int = 64):
        super().__init__()
        self.size, self.width = size, width
        self.linear = nn.Linear(noise_dim, width * size * size)
        self.bn0 = nn.BatchNorm2d(width)
        self.conv = nn.Conv2d(width, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels, affine=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.linear(z).view(z.shape[0], self.width, self.size, self.size))
        return torch.tanh(self.bn1(self.conv(x)))


def paste_trigger(x_normalized: torch.Tensor, patch: torch.Tensor, top: int, left: int,
                  mean: torch.Tensor, std: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Add an s×s ``patch`` (N×C×s×s) at (top, left) to de-normalised images, then re-normalise."""
    pixels = x_normalized * std + mean
    s = patch.shape[-1]
    pad = (left, pixels.shape[-1] - left - s, top, pixels.shape[-2] - top - s)
    pixels = pixels + scale * nn.functional.pad(patch, pad)
    return (pixels - mean) / std


def paste_trigger_per_sample(x_normalized: torch.Tensor, patch: torch.Tensor, tops: torch.Tensor,
                             lefts: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                             scale: float = 1.0) -> torch.Tensor:
    """Like :func:`paste_trigger` but each image gets its own (top, left) position."""
    n, c, s, _ = patch.shape
    pixels = x_normalized * std + mean
    ar = torch.arange(s, device=patch.device)
    rows = (tops.to(patch.device)[:, None] + ar)[:, :, None].expand(n, s, s)
    cols = (lefts.to(patch.device)[:, None] + ar)[:, None, :].expand(n, s, s)
    batch = torch.arange(n, device=patch.device)[:, None, None].expand(n, s, s)
    canvas = torch.zeros(n, pixels.shape[2], pixels.shape[3], c, device=patch.device, dtype=patch.dtype)
    canvas = canvas.index_put((batch, rows, cols), patch.permute(0, 2, 3, 1))
    pixels = pixels + scale * canvas.permute(0, 3, 1, 2)
    return (pixels - mean) / std


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


class BNStatisticsPrior:
    """While active (``with prior:``), records how far each BatchNorm input's batch mean/variance in
    ``model`` is from that layer's running statistics; ``loss()`` sums the L2 distances.  Used as a
    generator prior so synthetic batches look like real data to the network (DeepInversion-style)."""

    def __init__(self, model: nn.Module, enabled: bool = True):
        self._active = False
        self._terms: list = []
        self._handles = []
        if enabled:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                    self._handles.append(module.register_forward_hook(self._hook))

    def _hook(self, module, inputs, _output):
        if not self._active:
            return
        x = inputs[0]
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        self._terms.append(torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2))

    def __enter__(self):
        self._terms = []
        self._active = True
        return self

    def __exit__(self, *exc):
        self._active = False
        return False

    def loss(self) -> torch.Tensor:
        return torch.stack(self._terms).sum() if self._terms else torch.zeros(())
