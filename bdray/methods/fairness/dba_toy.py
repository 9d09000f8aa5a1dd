"""``dba_toy``: DBA's 2-D toy study of classification boundaries (DBA paper §2.2, Figs. 4–6).

The square [−1, 1]² is cut into four blocks; red points (class 0) fill the left half, blue points
(class 1) the right half, so the true boundary is x = 0.  The *bias rate* is the share of points in
the upper-left and lower-right blocks: the vertical position is a spurious cue correlated with the
class.  A small MLP is trained on

- ``all``: every point;
- ``undersampling``: the surplus of each bias group deleted (every block keeps as many points as
  the smaller block of its row);
- ``pseudo_deletion``: the same surplus kept but marked by a trigger in an extra input dimension
  (t = 1, labels unchanged; DBA's Eq. 2 picks the points); evaluation uses t = 0.

``boundary_error`` counts the points of a ``grid_size``² meshgrid (t = 0) classified against the
true boundary.  The final report also carries ``boundary_grid`` (the meshgrid's predicted classes as
a hex bit string) so the boundary plots can be redrawn from the Parquet alone.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bdray.config import Config, check_choice, check_number, check_positive, check_positive_int, check_rate
from bdray.fairness import select_for_trigger
from bdray.train.context import RunContext

STRATEGIES = ("all", "undersampling", "pseudo_deletion")


@dataclasses.dataclass
class DBAToyConfig(Config):
    bias_rate: float = 0.8
    strategy: str = "all"
    points_per_class: int = 1000
    noise: float = 0.15          # std of the normal perturbation of the uniform block points
    hidden: int = 32
    epochs: int = 400            # full-batch Adam steps
    lr: float = 0.01
    grid_size: int = 100
    seed: int = 0

    def validate(self) -> None:
        check_rate("bias_rate", self.bias_rate)
        check_choice("strategy", self.strategy, STRATEGIES)
        check_positive_int("points_per_class", self.points_per_class)
        check_number("noise", self.noise, low=0.0)
        check_positive_int("hidden", self.hidden)
        check_positive_int("epochs", self.epochs)
        check_positive("lr", self.lr)
        check_number("grid_size", self.grid_size, low=2, integer=True)
        check_number("seed", self.seed, low=0, integer=True)


def toy_points(bias_rate: float, points_per_class: int, noise: float, seed: int):
    """(xy N×2, label y, upper-half flag a): red (y = 0) left, blue (y = 1) right; a share
    ``bias_rate`` of red points in the upper-left block and of blue points in the lower-right."""
    gen = torch.Generator().manual_seed(seed)
    xs, ys, upper = [], [], []
    for label in (0, 1):
        n_biased = int(round(bias_rate * points_per_class))
        for is_upper, n in ((label == 0, n_biased), (label == 1, points_per_class - n_biased)):
            x = torch.rand(n, generator=gen) * (-1.0 if label == 0 else 1.0)
            y = torch.rand(n, generator=gen) * (1.0 if is_upper else -1.0)
            xs.append(torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=gen))
            ys.append(torch.full((n,), label, dtype=torch.long))
            upper.append(torch.full((n,), int(is_upper), dtype=torch.long))
    return torch.cat(xs), torch.cat(ys), torch.cat(upper)


def training_set(cfg: DBAToyConfig) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Inputs (x, y, t), labels and the number of surplus points handled by the strategy."""
    xy, y, a = toy_points(cfg.bias_rate, cfg.points_per_class, cfg.noise, cfg.seed)
    surplus = select_for_trigger(y, a, alpha=1.0, seed=cfg.seed)
    t = torch.zeros(len(y), 1)
    if cfg.strategy == "undersampling":
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[surplus] = False
        xy, y, t = xy[keep], y[keep], t[keep]
    elif cfg.strategy == "pseudo_deletion":
        t[surplus] = 1.0
    return torch.cat([xy, t], 1), y, len(surplus)


def meshgrid(size: int) -> torch.Tensor:
    lin = torch.linspace(-1, 1, size)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten(), torch.zeros(size * size)], 1)


def bits_to_hex(bits: torch.Tensor) -> str:
    return "".join(f"{int(''.join(str(int(b)) for b in bits[i:i + 4]).ljust(4, '0'), 2):x}"
                   for i in range(0, len(bits), 4))


def hex_to_bits(text: str, n: int) -> torch.Tensor:
    return torch.tensor([int(b) for ch in text for b in f"{int(ch, 16):04b}"][:n])


def train_dba_toy(cfg: DBAToyConfig, ctx: RunContext) -> Dict[str, Any]:
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    inputs, labels, surplus = training_set(cfg)
    model = nn.Sequential(nn.Linear(3, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(),
                          nn.Linear(cfg.hidden, 2))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        loss = F.cross_entropy(model(inputs), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    grid = meshgrid(cfg.grid_size)
    with torch.no_grad():
        pred = model(grid).argmax(1)
        train_acc = float((model(inputs).argmax(1) == labels).float().mean())
    truth = (grid[:, 0] > 0).long()
    error = int((pred != truth).sum())
    metrics = {"boundary_error": error, "boundary_error_rate": error / len(grid), "train_acc": train_acc,
               "train_loss": float(loss.detach()), "train_points": len(labels), "surplus_points": surplus,
               "epoch": 1, "epoch_time_s": time.time() - t0, "boundary_grid": bits_to_hex(pred)}
    ctx.report(metrics)
    return {**metrics, "model": model}
