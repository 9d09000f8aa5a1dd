"""``no_defense``: the model trained on the poisoned data with no defense -- the attack artifact
itself (trained once per distinct ``backdoor`` config, or reused), evaluated and reported as one
trial, so that robustness and comparison tables have their "None" rows."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict

from bdray.config import Config, ConfigError, check_number
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import load_threat
from bdray.metrics import der_columns, evaluate_splits
from bdray.train.context import RunContext


@dataclasses.dataclass
class NoDefenseConfig(Config):
    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    seed: int = 0

    def validate(self) -> None:
        if not isinstance(self.backdoor, BackdoorConfig):
            raise ConfigError("backdoor", self.backdoor, "a BackdoorConfig (the attack)")
        check_number("seed", self.seed, low=0, integer=True)


def train_no_defense(cfg: NoDefenseConfig, ctx: RunContext) -> Dict[str, Any]:
    t0 = time.time()
    threat = load_threat(cfg.backdoor, ctx)
    model = threat.model
    metrics = evaluate_splits(model, threat.data, threat.trigger, threat.target_class)
    metrics.update(der_columns(metrics, metrics))  # 0.5: nothing changed
    metrics.update(epoch=cfg.backdoor.epochs, epoch_time_s=time.time() - t0, resumed_from_epoch=0)
    ctx.report(metrics)
    return {**metrics, "model": model}
