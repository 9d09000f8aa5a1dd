"""``activation_clustering`` (Chen et al., AAAI SafeAI 2019): within each class, the penultimate
activations of poisoned samples form their own cluster. Per class: reduce the activations to
``components`` dimensions (the paper uses ICA to 10; here PCA, as IBM ART's implementation
defaults to), split them with 2-means, and flag the smaller cluster when it holds at most
``size_threshold`` of the class (the paper's "relative size" analysis; ART's default 0.35).

Score of a sample (for the AUROC): how much closer it lies to its class's smaller cluster than to
the larger one, in units of the class's spread. The method assumes the poison is the minority of
its class: when an attack poisons as many samples as the target class has clean ones, the split
is even and nothing is flagged.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, Tuple

import torch

from bdray.config import check_number, check_positive_int
from bdray.methods.detection.common import DetectorConfig, finish, penultimate_features, suspect_set
from bdray.train.context import RunContext


@dataclasses.dataclass
class ActivationClusteringConfig(DetectorConfig):
    components: int = 10          # dimensions kept before clustering (paper: 10)
    size_threshold: float = 0.35  # flag the smaller cluster when it is at most this share of the class
    restarts: int = 5             # 2-means restarts (the lowest inertia wins)

    def validate(self) -> None:
        super().validate()
        check_positive_int("components", self.components)
        check_number("size_threshold", self.size_threshold, low=0.0, high=0.5, low_open=True)
        check_positive_int("restarts", self.restarts)


def reduce(features: torch.Tensor, components: int) -> torch.Tensor:
    """The centred ``features`` projected on their top ``components`` principal directions."""
    centred = (features - features.mean(0, keepdim=True)).double()
    k = min(components, *centred.shape)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return centred @ vh[:k].T


def two_means(points: torch.Tensor, generator: torch.Generator, restarts: int, iterations: int = 50
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(assignment, centres)`` of 2-means (k-means++ seeding, Lloyd iterations), best of ``restarts``."""
    best, best_inertia = None, float("inf")
    n = len(points)
    for _ in range(restarts):
        first = points[torch.randint(n, (1,), generator=generator)]
        d2 = (points - first).pow(2).sum(1)
        second = points[torch.multinomial((d2 + 1e-12) / (d2 + 1e-12).sum(), 1, generator=generator)]
        centres = torch.cat([first, second])
        for _ in range(iterations):
            assignment = torch.cdist(points, centres).argmin(1)
            new = torch.stack([points[assignment == j].mean(0) if (assignment == j).any() else centres[j]
                               for j in range(2)])
            if torch.allclose(new, centres):
                break
            centres = new
        inertia = float(torch.cdist(points, centres).min(1).values.pow(2).sum())
        if inertia < best_inertia:
            best, best_inertia = (assignment, centres), inertia
    return best


def train_activation_clustering(cfg: ActivationClusteringConfig, ctx: RunContext) -> Dict[str, Any]:
    t0 = time.time()
    model, poisoned = suspect_set(cfg, ctx)
    labels = poisoned.train.labels.cpu()
    features = penultimate_features(model, poisoned.train.images, cfg.batch_size).cpu()
    generator = torch.Generator().manual_seed(cfg.seed)
    scores = torch.zeros(len(labels))
    flagged = torch.zeros(len(labels), dtype=torch.bool)
    smallest_share = 1.0
    for c in range(poisoned.data.num_classes):
        members = torch.nonzero(labels == c).flatten()
        if len(members) < 4:
            continue
        points = reduce(features[members], cfg.components)
        assignment, centres = two_means(points, generator, cfg.restarts)
        sizes = torch.bincount(assignment, minlength=2)
        small = int(sizes.argmin())
        share = float(sizes[small]) / len(members)
        smallest_share = min(smallest_share, share)
        distances = torch.cdist(points, centres)
        spread = distances.min(1).values.mean().clamp_min(1e-12)
        scores[members] = ((distances[:, 1 - small] - distances[:, small]) / spread).float()
        if share <= cfg.size_threshold:
            flagged[members[assignment == small]] = True
    return finish(cfg, ctx, model, poisoned, flagged, scores, t0, {"smallest_cluster_share": smallest_share},
                  name="activation_clustering")
