"""What every defense starts from: the backdoored model (an artifact), the data and the trigger."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict

from bdray.artifacts import backdoored_model
from bdray.attacks.specs import Trigger
from bdray.data import Dataset, load_dataset
from bdray.methods.backdoor import BackdoorConfig, build_attack_trigger
from bdray.models import ImageClassifier
from bdray.runtime.context import RunContext


@dataclasses.dataclass
class Threat:
    model: ImageClassifier          # the backdoored model, on the context's device
    metrics: Dict[str, Any]         # its metrics when it was trained
    data: Dataset                   # clean train/test splits (the defender never sees poisoned data)
    trigger: Trigger                # the attack's test-time trigger, for evaluation only
    target_class: int


def load_threat(cfg: BackdoorConfig, ctx: RunContext) -> Threat:
    model, metrics, trigger_state = backdoored_model(cfg, ctx, with_trigger_state=True)
    data = load_dataset(cfg.dataset, cfg.data_root, cfg.download).to(ctx.device)
    trigger = build_attack_trigger(cfg, data.image_shape, trigger_state)
    return Threat(model, metrics, data, trigger, cfg.target_class)
