"""``neural_cleanse``: targeted erasing (Wang et al. 2019; methods.md §3.2).

For the known target class, reverse-engineer a mask m and pattern p that send clean images to
the target: minimise CE(f((1−m)·x + m·p), t) + mask_weight·mean(m).  Then stamp the recovered
trigger on ``stamp_fraction`` of the clean subset with their correct labels and fine-tune.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict

import torch
import torch.nn.functional as F

from bdray.config import check_non_negative, check_number, check_positive, check_positive_int
from bdray.data import Split, to_float, to_uint8
from bdray.methods.attack.threat import load_threat
from bdray.methods.common import seed_everything
from bdray.methods.erasing.clean_data import ErasingConfig, clean_subset, train_on_clean
from bdray.train.context import RunContext


@dataclasses.dataclass
class NeuralCleanseConfig(ErasingConfig):
    nc_steps: int = 300
    nc_lr: float = 0.1
    mask_weight: float = 0.01      # λ of the mask-size penalty (on the mean mask value)
    stamp_fraction: float = 0.2    # share of the clean subset stamped with the recovered trigger

    def validate(self) -> None:
        super().validate()
        check_positive_int("nc_steps", self.nc_steps)
        check_positive("nc_lr", self.nc_lr)
        check_non_negative("mask_weight", self.mask_weight)
        check_number("stamp_fraction", self.stamp_fraction, low=0.0, high=1.0)


def reverse_engineer_trigger(model, images: torch.Tensor, target: int, steps: int, lr: float, mask_weight: float,
                             seed: int, batch_size: int = 128):
    """(mask 1×H×W, pattern C×H×W, attack success of the recovered trigger on ``images``)."""
    model.eval()
    _, c, h, w = images.shape
    gen = torch.Generator().manual_seed(seed)
    mask_param = torch.full((1, h, w), -3.0, device=images.device, requires_grad=True)
    pattern_param = (torch.rand(c, h, w, generator=gen) * 2 - 1).to(images.device).requires_grad_(True)
    opt = torch.optim.Adam([mask_param, pattern_param], lr=lr)
    targets = torch.full((min(batch_size, len(images)),), target, device=images.device)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (len(targets),), generator=gen).to(images.device)
        mask, pattern = torch.sigmoid(mask_param), torch.sigmoid(pattern_param)
        x = (1 - mask) * images[idx] + mask * pattern
        loss = F.cross_entropy(model(x), targets) + mask_weight * mask.sum() / mask.numel() * h * w / 10
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        mask, pattern = torch.sigmoid(mask_param), torch.sigmoid(pattern_param)
        stamped = (1 - mask) * images + mask * pattern
        success = float((model(stamped).argmax(1) == target).float().mean())
    return mask.detach(), pattern.detach(), success


def train_neural_cleanse(cfg: NeuralCleanseConfig, ctx: RunContext) -> Dict[str, Any]:
    threat = load_threat(cfg.backdoor, ctx)
    gen = seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    model = copy.deepcopy(threat.model)
    clean = to_float(subset.images)
    mask, pattern, success = reverse_engineer_trigger(model, clean, threat.target_class, cfg.nc_steps, cfg.nc_lr,
                                                      cfg.mask_weight, cfg.seed)
    n_stamp = int(round(cfg.stamp_fraction * len(subset)))
    chosen = torch.randperm(len(subset), generator=gen)[:n_stamp].to(clean.device)
    images = subset.images.clone()
    images[chosen] = to_uint8((1 - mask) * clean[chosen] + mask * pattern)
    stamped = Split(images, subset.labels.clone())  # correct labels: unlearn the recovered trigger
    metrics = train_on_clean(cfg, ctx, threat, model, stamped,
                             extra_metrics={"nc_mask_l1": float(mask.sum()), "nc_trigger_success": success})
    return {**metrics, "model": model}
