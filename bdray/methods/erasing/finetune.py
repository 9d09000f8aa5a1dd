"""``finetune``: fine-tune the backdoored model on the defender's clean subset (methods.md §3.2)."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict

from bdray.methods.attack.threat import load_threat
from bdray.methods.common import seed_everything
from bdray.methods.erasing.clean_data import ErasingConfig, clean_subset, train_on_clean
from bdray.train.context import RunContext


@dataclasses.dataclass
class FinetuneConfig(ErasingConfig):
    pass


def train_finetune(cfg: FinetuneConfig, ctx: RunContext) -> Dict[str, Any]:
    threat = load_threat(cfg.backdoor, ctx)
    seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    model = copy.deepcopy(threat.model)
    metrics = train_on_clean(cfg, ctx, threat, model, subset)
    return {**metrics, "model": model}
