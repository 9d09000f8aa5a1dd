"""``backdoor``: the attack's config and the training of a model on a poisoned training set
(poison_rate 0 = clean training).

The trained model is the *attack artifact* every defense starts from; the threat model
(``bdray.methods.attack.threat``) builds the trigger, the poisoned set and that artifact.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import torch

from bdray.attacks import attack_params
from bdray.attacks.specs import Trigger
from bdray.config import (ConfigError, check_choice, check_non_negative, check_number, check_positive, check_positive_int, check_rate,
                          keyed_when_set)
from bdray.data import Dataset, Split, to_float
from bdray.methods.common import validate_threat
from bdray.metrics import evaluate_splits
from bdray.train import AugmentedTrainSettings, Engine, Phase, Update, cross_entropy
from bdray.train.batches import shuffled
from bdray.train.context import RunContext, unwrap
from bdray.train.schedules import cosine_lr_factor


@dataclasses.dataclass
class BackdoorConfig(AugmentedTrainSettings):
    """A model trained on poisoned data.  Defaults suit the embedded ``digits`` data on a CPU; the
    seed, batch size, augmentation and device settings come from ``AugmentedTrainSettings``."""

    dataset: str = "digits"
    data_root: Optional[str] = None
    download: bool = False
    model: str = "small_cnn"
    attack: str = "badnets"
    attack_params: Dict[str, Any] = dataclasses.field(default_factory=dict)
    poison_rate: float = 0.1
    target_class: int = 0
    label_mode: str = "auto"  # "dirty", "clean", or "auto" (the attack's own kind)
    epochs: int = 20
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # share of the training split held out (never trained on, by the attack or any defense) as the
    # validation split that every method also reports ``val_*`` metrics on; sweeps choose on those
    val_fraction: float = keyed_when_set(0.0)
    # class-folder data only (dataset "folder"): every image resized to image_size × image_size
    image_size: Optional[int] = keyed_when_set(None)

    def __post_init__(self) -> None:
        super().__post_init__()
        # canonical form: every declared attack parameter, defaults filled in, so that equal
        # attacks give equal artifact keys and every parameter gets its own column
        params = attack_params(self.attack, self.attack_params).to_dict()
        if "target_class" in params:  # attacks that optimise towards the target (trojan) follow ours
            params["target_class"] = self.target_class
        self.attack_params = params

    def replace(self, **changes: Any) -> "BackdoorConfig":
        # switching attack starts from the new attack's defaults unless parameters are given
        if "attack" in changes and changes["attack"] != self.attack and "attack_params" not in changes:
            changes["attack_params"] = {}  # dotted "attack_params.<name>" changes apply on top
        return super().replace(**changes)

    def validate(self) -> None:
        if self.image_size is not None and self.dataset != "folder":
            raise ConfigError("image_size", self.image_size, "None unless dataset is folder (class folders are "
                                                             "resized; other sources keep their size)")
        validate_threat(self.dataset, self.model, self.attack, self.attack_params, self.target_class,
                        self.data_root, self.image_size)
        check_rate("poison_rate", self.poison_rate)
        check_choice("label_mode", self.label_mode, ("auto", "dirty", "clean"))
        check_positive_int("epochs", self.epochs)
        check_positive("lr", self.lr)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_non_negative("weight_decay", self.weight_decay)
        check_number("val_fraction", self.val_fraction, low=0.0, high=0.5, high_open=True)
        super().validate()

    def columns(self, prefix: str = "") -> Dict[str, Any]:
        out = super().columns(prefix)
        # attack parameters as attack_<name> (e.g. attack_trigger_size), not attack_params_<name>
        for key in list(out):
            if key.startswith(prefix + "attack_params_"):
                out[prefix + "attack_" + key[len(prefix + "attack_params_"):]] = out.pop(key)
        return out


def surrogate_config(cfg: BackdoorConfig) -> BackdoorConfig:
    """The clean model an attack optimises its trigger / perturbations on: same data, model and
    training, no poison."""
    return cfg.replace(attack="badnets", attack_params={}, poison_rate=0.0, label_mode="auto")


def resolved_label_mode(cfg: BackdoorConfig, trigger: Trigger) -> str:
    if cfg.label_mode != "auto":
        return cfg.label_mode
    return "clean" if trigger.clean_label else "dirty"


def train_on_poisoned(cfg: BackdoorConfig, ctx: RunContext, data: Dataset, split: Split, trigger: Trigger,
                      model: torch.nn.Module, extra_metrics: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Train ``model`` on the poisoned training ``split`` (one phase of the training engine) and
    report ``data``'s test metrics (and ``extra_metrics``) each epoch; return the final ones plus
    the trained model (``"model"``, the unwrapped ``ImageClassifier``).  The threat model
    (``bdray.methods.attack.threat``) builds the split, the trigger and the model."""
    engine = Engine(ctx, cfg, cfg.seed, name="backdoor")
    model = engine.module("model", model)
    opt = engine.optimizer("optimizer", torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                                        weight_decay=cfg.weight_decay, nesterov=True))
    n = len(split)
    per_rank = n // ctx.world_size if ctx.world_size > 1 else n
    engine.warm_up(model, lambda m, x: m(x), _batch_shapes(split.images, per_rank, cfg.batch_size))
    update = Update(opt, shuffled(split, torch.arange(n), cfg.batch_size, ctx, crop_padding=cfg.crop_padding,
                                  hflip=data.hflip),
                    cross_entropy(engine.caller(model)), lr=lambda progress: cfg.lr * cosine_lr_factor(progress),
                    steps=max(1, -(-per_rank // cfg.batch_size)))
    phase = Phase("train", cfg.epochs, [update],
                  lambda info: {**evaluate_splits(unwrap(model), data, trigger, cfg.target_class),
                                **(extra_metrics or {})},
                  training=[model])
    metrics = engine.run([phase])
    return {**metrics, "model": unwrap(model)}


def _batch_shapes(images: torch.Tensor, n: int, batch_size: int):
    """One example batch per distinct training batch shape (a full one and the last, shorter
    one), for compiling ahead of training."""
    sizes = {min(batch_size, n)} | ({n % batch_size} if n % batch_size else set())
    return [to_float(images[:size]) for size in sorted(sizes)]
