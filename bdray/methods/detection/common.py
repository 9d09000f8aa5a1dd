"""What every poisoned-sample detector shares: its config fields, the suspect training set (the
backdoored model and the poisoned training split it was trained on, rebuilt exactly from the attack
artifact), penultimate features in batches, and the run's end -- judge the flagged set against the
recorded poison indices, optionally retrain without it, report."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, Tuple

import torch

from bdray.config import Config, ConfigError, check_number, check_positive_int
from bdray.data import to_float
from bdray.methods.attack.backdoor import BackdoorConfig, train_on_poisoned
from bdray.methods.attack.threat import PoisonedData, backdoored_model, poisoned_set
from bdray.methods.common import seed_everything
from bdray.methods.detection.metrics import detection_metrics
from bdray.metrics import evaluate_splits
from bdray.models import ImageClassifier, create_model
from bdray.train.context import RunContext


@dataclasses.dataclass
class DetectorConfig(Config):
    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    seed: int = 0
    batch_size: int = 512      # scoring batches (no training: only memory)
    # > 0: train a fresh model of the attack's architecture and recipe for this many epochs on the
    # training split without the flagged samples; acc/asr are then the retrained model's
    retrain_epochs: int = 0

    def validate(self) -> None:
        if not isinstance(self.backdoor, BackdoorConfig):
            raise ConfigError("backdoor", self.backdoor, "a BackdoorConfig (the attack)")
        check_number("seed", self.seed, low=0, integer=True)
        check_positive_int("batch_size", self.batch_size)
        check_number("retrain_epochs", self.retrain_epochs, low=0, integer=True)


def suspect_set(cfg: DetectorConfig, ctx: RunContext) -> Tuple[ImageClassifier, PoisonedData]:
    """The backdoored model (in eval mode) and the exact poisoned training split it learned from."""
    model, _, trigger_state = backdoored_model(cfg.backdoor, ctx, with_trigger_state=True)
    return model.eval(), poisoned_set(cfg.backdoor, ctx, trigger_state)


@torch.no_grad()
def penultimate_features(model: ImageClassifier, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Penultimate-layer features (N×D float) of uint8 ``images``, in batches."""
    return torch.cat([model.features(to_float(images[i:i + batch_size])).flatten(1).float()
                      for i in range(0, len(images), batch_size)])


def finish(cfg: DetectorConfig, ctx: RunContext, model: ImageClassifier, poisoned: PoisonedData,
           flagged: torch.Tensor, scores: torch.Tensor, t0: float, extra: Dict[str, Any] | None = None,
           name: str = "detector") -> Dict[str, Any]:
    """Judge, (optionally) retrain without the flagged samples, report, return the metrics."""
    judged = {**detection_metrics(flagged, poisoned.is_poisoned, scores), **(extra or {})}
    judged["detection_time_s"] = time.time() - t0
    ctx.log(f"{name}: flagged {judged['flagged_samples']} of {len(flagged)} training samples: "
            f"tpr {judged['detection_tpr']:.3f}, fpr {judged['detection_fpr']:.3f}, "
            f"auroc {judged['detection_auroc']:.3f}")
    before = evaluate_splits(model, poisoned.data, poisoned.trigger, poisoned.target_class)
    judged.update({"undefended_acc": before["acc"], "undefended_asr": before["asr"]})
    if cfg.retrain_epochs == 0:  # detection only: the model is the backdoored one, unchanged
        metrics = {**before, **judged, "epoch": 1, "resumed_from_epoch": 0, "epochs_planned": 1}
        ctx.report(metrics)
        return {**metrics, "model": model}
    keep = torch.nonzero(~flagged).flatten().to(poisoned.train.images.device)
    seed_everything(cfg.seed)
    data = poisoned.data
    fresh = create_model(cfg.backdoor.model, data.image_shape, data.num_classes, data.mean, data.std)
    result = train_on_poisoned(cfg.backdoor.replace(epochs=cfg.retrain_epochs), ctx, data,
                               poisoned.train.subset(keep), poisoned.trigger, fresh, extra_metrics=judged)
    return result
