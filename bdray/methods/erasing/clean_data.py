"""What the clean-data erasing baselines share (methods.md §3.2): the config fields, the clean
subset (a fraction of the clean training set, drawn by seed, duplicated up to the per-epoch sample
count) and their one training phase on the engine (``bdray.train``)."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from bdray.config import ConfigError, check_non_negative, check_number, check_positive, check_positive_int
from bdray.data import Split
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import Threat, load_threat
from bdray.methods.common import seed_everything
from bdray.metrics import der_columns, evaluate_splits
from bdray.train import AugmentedTrainSettings, Batch, Engine, EpochInfo, Phase, Update
from bdray.train.batches import repeated
from bdray.train.context import RunContext, unwrap
from bdray.train.schedules import step_lr_factor


@dataclasses.dataclass
class ErasingConfig(AugmentedTrainSettings):
    """Fields of every clean-data baseline.  Defaults follow the DHBE paper's appendix (SGD lr 0.01, momentum
    0.9, 20 epochs, batch 64, lr ×0.1 at epochs 10 and 15) with 500 samples per epoch for the
    embedded digits; the paper budgets take the paper's 2,000 (``presets.PAPER_EPOCH_SAMPLES``)."""

    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    clean_fraction: float = 0.04   # share of the training set the defender holds clean (4 % or 1 %)
    subset_seed: int = 0           # which clean subset
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 20
    samples_per_epoch: int = 500
    batch_size: int = 64
    lr_milestones: Tuple[float, ...] = (0.5, 0.75)

    def validate(self) -> None:
        super().validate()
        check_clean_data_fields(self)
        check_positive("lr", self.lr)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_non_negative("weight_decay", self.weight_decay)
        for name in ("epochs", "samples_per_epoch"):
            check_positive_int(name, getattr(self, name))
        for m in self.lr_milestones:
            check_number("lr_milestones", m, low=0.0, high=1.0)


def check_clean_data_fields(cfg: Any) -> None:
    """The fields every defense holding a clean share of the training set has: the attack to erase
    (``backdoor``), the share (``clean_fraction`` in (0, 1]) and which share (``subset_seed``)."""
    if not isinstance(cfg.backdoor, BackdoorConfig):
        raise ConfigError("backdoor", cfg.backdoor, "a BackdoorConfig (the attack to erase)")
    check_number("clean_fraction", cfg.clean_fraction, low=0.0, high=1.0, low_open=True)
    check_number("subset_seed", cfg.subset_seed, low=0, integer=True)


def clean_subset(train: Split, fraction: float, seed: int) -> Split:
    """``round(fraction·N)`` (at least 1) clean training samples, drawn by ``seed``."""
    n = max(1, int(round(fraction * len(train))))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return train.subset(order.to(train.images.device))


def defended_metrics(model: torch.nn.Module, threat: Threat, clean_samples: int) -> Dict[str, Any]:
    """A defended model's row: its metrics on the threat's splits (with the activation columns), the
    clean share it used, the backdoored model's ``teacher_acc`` / ``teacher_asr`` and the DER columns."""
    metrics = evaluate_splits(model, threat.data, threat.trigger, threat.target_class, activations=True)
    metrics.update(clean_samples=clean_samples, teacher_acc=threat.metrics["acc"], teacher_asr=threat.metrics["asr"],
                   **der_columns(metrics, threat.metrics))
    return metrics


def start_purification(cfg: Any, ctx: RunContext, name: str) -> Tuple[Threat, Split, Engine, torch.nn.Module]:
    """What a clean-data defense that purifies the backdoored model starts from: the threat (the
    attack artifact, loaded once), the seeded RNG, the defender's clean subset, the engine and a
    copy of the backdoored model registered on it (create its optimisers after this)."""
    threat = load_threat(cfg.backdoor, ctx)
    seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    engine = Engine(ctx, cfg, cfg.seed, name=name)
    return threat, subset, engine, engine.module("model", copy.deepcopy(threat.model))


# an extra loss term: (its value, named parts to report as epoch means -- device tensors)
ExtraLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], Tuple[torch.Tensor, Dict[str, torch.Tensor]]]


def train_on_clean(cfg: ErasingConfig, ctx: RunContext, threat: Threat, model: torch.nn.Module, subset: Split, *,
                   extra_loss: Optional[ExtraLoss] = None, after_step: Optional[Callable[[], None]] = None,
                   extra_metrics: Optional[Dict[str, Any]] = None, report: bool = True,
                   epochs: Optional[int] = None,
                   lr_factor: Optional[Callable[[float], float]] = None) -> Dict[str, Any]:
    """SGD with cross-entropy on ``subset`` (plus ``extra_loss``) on the engine, evaluated,
    reported and checkpointed each epoch (``report=False``: none of that, e.g. NAD's teacher);
    resumes from the context's checkpoint.  The lr is ``cfg.lr`` times ``lr_factor(progress)``
    (default: ×0.1 at each of ``cfg.lr_milestones``).  Returns the last epoch's metrics."""
    engine = Engine(ctx, cfg, cfg.seed, name=type(cfg).__name__.removesuffix("Config").lower(), report=report)
    model = engine.module("model", model)
    opt = engine.optimizer("optimizer", torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                                        weight_decay=cfg.weight_decay))
    forward = engine.caller(model)

    def loss(batch: Batch):
        ce = F.cross_entropy(forward(batch.x), batch.y)
        if extra_loss is None:
            return ce
        extra, parts = extra_loss(model, batch.x, batch.y)
        return ce + extra, parts

    def evaluate(info: EpochInfo) -> Dict[str, Any]:
        return {**defended_metrics(unwrap(model), threat, len(subset)), **(extra_metrics or {})}

    batches = repeated(subset, cfg.samples_per_epoch, cfg.batch_size, crop_padding=cfg.crop_padding,
                       hflip=threat.data.hflip)
    factor = lr_factor or (lambda progress: step_lr_factor(progress, cfg.lr_milestones))
    update = Update(opt, batches, loss, lr=lambda progress: cfg.lr * factor(progress), after_step=after_step)
    return engine.run([Phase("clean", epochs or cfg.epochs, [update], evaluate, training=[model])])
