"""``strip`` (Gao et al., ACSAC 2019): superimpose an input on ``num_perturbations`` random clean
images and average the entropy of the model's predictions; a trigger keeps dominating the
prediction whatever it is blended with, so triggered inputs have low entropy. The threshold is the
``frr`` quantile of the clean held-out samples' entropies (the paper presets the false rejection
rate, 1 %); an input below it is flagged.

Superimposition as in the authors' code: the pixel sum of the two images, saturated (OpenCV's
``addWeighted(a, 1, b, 1, 0)`` on uint8). The defender's clean samples are a ``clean_fraction`` of
the clean training split (as the clean-data baselines hold them). Two uses, both reported:

- training set: every training sample scored, flagged ones judged against the poison indices
  (``detection_*``; with ``retrain_epochs`` the model is retrained without them);
- test time: the clean test images and their triggered copies (non-target classes), as an input
  filter: ``strip_test_tpr`` (triggered inputs rejected), ``strip_test_fpr`` (clean inputs
  rejected), ``strip_test_auroc``.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict

import torch

from bdray.config import check_number, check_positive_int
from bdray.data import to_float
from bdray.methods.detection.common import DetectorConfig, finish, suspect_set
from bdray.methods.detection.metrics import detection_metrics
from bdray.methods.erasing.clean_data import clean_subset
from bdray.train.context import RunContext


@dataclasses.dataclass
class STRIPConfig(DetectorConfig):
    num_perturbations: int = 100  # clean images each input is superimposed on (paper: N = 100)
    frr: float = 0.01             # preset false rejection rate on the clean samples (paper: 1 %)
    clean_fraction: float = 0.05  # share of the clean training split the defender holds
    subset_seed: int = 0

    def validate(self) -> None:
        super().validate()
        check_positive_int("num_perturbations", self.num_perturbations)
        check_number("frr", self.frr, low=0.0, high=0.5, low_open=True)
        check_number("clean_fraction", self.clean_fraction, low=0.0, high=1.0, low_open=True)
        check_number("subset_seed", self.subset_seed, low=0, integer=True)


@torch.no_grad()
def strip_entropy(model: torch.nn.Module, inputs: torch.Tensor, overlays: torch.Tensor, num_perturbations: int,
                  generator: torch.Generator, batch_size: int) -> torch.Tensor:
    """Mean prediction entropy (nats) of each float input superimposed on random ``overlays``."""
    out = []
    per_batch = max(1, batch_size // num_perturbations)
    for start in range(0, len(inputs), per_batch):
        x = inputs[start:start + per_batch]
        pick = torch.randint(len(overlays), (len(x), num_perturbations), generator=generator).to(overlays.device)
        blended = (x[:, None] + overlays[pick]).clamp_(0.0, 1.0).flatten(0, 1)
        logp = torch.log_softmax(model(blended).float(), dim=1)
        entropy = -(logp.exp() * logp).sum(1).view(len(x), num_perturbations).mean(1)
        out.append(entropy)
    return torch.cat(out)


def train_strip(cfg: STRIPConfig, ctx: RunContext) -> Dict[str, Any]:
    t0 = time.time()
    model, poisoned = suspect_set(cfg, ctx)
    held = to_float(clean_subset(poisoned.data.train, cfg.clean_fraction, cfg.subset_seed).images)
    generator = torch.Generator().manual_seed(cfg.seed)

    def entropy(images):
        return strip_entropy(model, images, held, cfg.num_perturbations, generator, cfg.batch_size * 8).cpu()

    clean_entropy = entropy(held)
    threshold = float(torch.quantile(clean_entropy.double(), cfg.frr))
    train_entropy = entropy(to_float(poisoned.train.images))
    flagged = train_entropy < threshold
    # test time: clean test inputs vs their triggered copies (non-target classes)
    test = poisoned.data.test
    keep = test.labels != poisoned.target_class
    clean_test = to_float(test.images[keep])
    test_entropy = torch.cat([entropy(clean_test), entropy(poisoned.trigger.apply(clean_test))])
    triggered = torch.cat([torch.zeros(len(clean_test), dtype=torch.bool), torch.ones(len(clean_test), dtype=torch.bool)])
    at_test = detection_metrics(test_entropy < threshold, triggered, -test_entropy, prefix="strip_test_")
    at_test.pop("flagged_samples")
    at_test.pop("strip_test_recall")
    extra = {**at_test, "strip_threshold": threshold, "strip_clean_entropy": float(clean_entropy.mean())}
    return finish(cfg, ctx, model, poisoned, flagged, -train_entropy, t0, extra, name="strip")
