"""``spectral_signatures`` (Tran, Li & Madry, NeurIPS 2018): within each class, the poisoned samples
leave a trace in the top singular direction of the centred penultimate representations. Score of a
sample = its squared projection on that direction; in every class the ``removal_factor`` × ε × n_c
highest-scoring samples are flagged (the paper removes 1.5 ε, ε an upper bound on the poisoned share
of a class).

ε is the *defender's assumption*: it never comes from the attack (a defender does not know the
poisoning rate).  The default 0.1 is the largest poisoned share of a class the paper's experiments
use (5 % and 10 % of the target class), so 1.5 ε flags 15 % of every class; an attack that puts more
than ε of a class's samples in the poison (BadNets at 10 % of a ten-class training set is about half
of the target class) is beyond the paper's threat model and only partly caught -- sweep ``epsilon``
to see how far.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Dict

import torch

from bdray.config import check_number, check_positive
from bdray.methods.detection.common import DetectorConfig, finish, penultimate_features, suspect_set
from bdray.train.context import RunContext


@dataclasses.dataclass
class SpectralSignaturesConfig(DetectorConfig):
    epsilon: float = 0.1              # the defender's assumed upper bound on a class's poisoned share
    removal_factor: float = 1.5       # flag removal_factor × ε × n_c per class (paper: 1.5)

    def validate(self) -> None:
        super().validate()
        check_number("epsilon", self.epsilon, low=0.0, high=1.0, low_open=True)
        check_positive("removal_factor", self.removal_factor)


def class_scores(features: torch.Tensor) -> torch.Tensor:
    """Squared projections of the centred ``features`` (n×D) on their top right singular vector."""
    centred = features - features.mean(0, keepdim=True)
    if len(centred) < 2:
        return torch.zeros(len(centred), device=features.device)
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    return (centred.double() @ vh[0]).pow(2).float()


def train_spectral_signatures(cfg: SpectralSignaturesConfig, ctx: RunContext) -> Dict[str, Any]:
    t0 = time.time()
    model, poisoned = suspect_set(cfg, ctx)
    labels = poisoned.train.labels
    features = penultimate_features(model, poisoned.train.images, cfg.batch_size)
    epsilon = cfg.epsilon
    scores = torch.zeros(len(labels))
    flagged = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(poisoned.data.num_classes):
        members = torch.nonzero(labels == c).flatten()
        if len(members) == 0:
            continue
        s = class_scores(features[members]).cpu()
        k = min(len(members), int(math.ceil(cfg.removal_factor * epsilon * len(members))))
        if k:
            flagged[members.cpu()[torch.topk(s, k).indices]] = True
        # the AUROC compares scores across classes: each class's in units of its median
        scores[members.cpu()] = s / s.median().clamp_min(1e-12)
    return finish(cfg, ctx, model, poisoned, flagged, scores, t0, {"epsilon_used": epsilon},
                  name="spectral_signatures")
