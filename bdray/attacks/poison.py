"""Poisoning a training split: which samples carry the trigger, and their labels."""
from __future__ import annotations

import dataclasses

import torch

from bdray.attacks.specs import Trigger
from bdray.config import ConfigError
from bdray.data.splits import Split, to_float, to_uint8


@dataclasses.dataclass
class PoisonedSplit:
    split: Split                  # images with triggers pasted, labels after poisoning
    poison_indices: torch.Tensor  # indices (into the split) that carry the trigger
    cross_indices: torch.Tensor   # WaNet noise-mode samples (warped, true label kept)
    clean_labels: torch.Tensor    # the labels before poisoning

    @property
    def is_poisoned(self) -> torch.Tensor:
        mask = torch.zeros(len(self.split), dtype=torch.bool)
        mask[self.poison_indices.cpu()] = True
        return mask


def poison_count(rate: float, n: int) -> int:
    return int(round(rate * n))


def poison_split(split: Split, trigger: Trigger, *, rate: float, target_class: int, label_mode: str,
                 seed: int, chunk: int = 4096) -> PoisonedSplit:
    """Poison ``round(rate·N)`` samples of ``split``.

    ``label_mode="dirty"``: drawn from non-target classes and relabelled ``target_class``.
    ``label_mode="clean"``: drawn from the target class, labels unchanged.
    The triggered images are stored back as uint8, as a poisoned dataset on disk would be.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigError("poison_rate", rate, "a number in [0, 1]")
    labels = split.labels.cpu()
    n_poison = poison_count(rate, len(split))
    if label_mode == "dirty":
        candidates = torch.nonzero(labels != target_class).flatten()
    elif label_mode == "clean":
        candidates = torch.nonzero(labels == target_class).flatten()
    else:
        raise ConfigError("label_mode", label_mode, "one of ['dirty', 'clean']")
    if n_poison > len(candidates):
        which = "non-target" if label_mode == "dirty" else "target-class"
        raise ConfigError("poison_rate", rate,
                          f"at most {len(candidates) / len(split):.4f}: only {len(candidates)} {which} "
                          f"samples exist to poison ({label_mode} label)")
    gen = torch.Generator().manual_seed(seed)
    chosen = candidates[torch.randperm(len(candidates), generator=gen)[:n_poison]].sort().values

    images = split.images.clone()
    new_labels = split.labels.clone()
    dev = images.device
    for start in range(0, len(chosen), chunk):
        idx = chosen[start:start + chunk].to(dev)
        images[idx] = to_uint8(trigger.poison(to_float(images[idx]), split.labels[idx], generator=gen))
    if label_mode == "dirty":
        new_labels[chosen.to(dev)] = target_class

    cross = torch.empty(0, dtype=torch.long)
    cross_ratio = getattr(trigger, "cross_ratio", 0.0)
    if cross_ratio > 0 and n_poison > 0:
        rest = torch.ones(len(split), dtype=torch.bool)
        rest[chosen] = False
        pool = torch.nonzero(rest).flatten()
        n_cross = min(len(pool), int(round(cross_ratio * n_poison)))
        cross = pool[torch.randperm(len(pool), generator=gen)[:n_cross]].sort().values
        for start in range(0, len(cross), chunk):
            idx = cross[start:start + chunk].to(dev)
            images[idx] = to_uint8(trigger.apply_noise(to_float(images[idx]), gen))
    return PoisonedSplit(Split(images, new_labels), chosen, cross, split.labels.clone())
