"""What the five debiasing strategies change about training (DBA paper §4.1, methods.md §3.6).

- ``normal``: plain training on every sample.
- ``undersampling``: each task's surplus (Eq. 2 with α = 1) deleted; with several tasks the union
  of their surpluses is deleted, i.e. only samples balanced for every task are kept.
- ``reweighting`` (Kamiran & Calders 2011): sample weight P(A = i)·P(Y = j) / P(A = i, Y = j) of
  its (A, Y) cell, per task.
- ``adversarial`` (Ganin & Lempitsky 2015): a head predicting A from the features through a
  gradient-reversal layer; the encoder learns to make A unpredictable.
- ``dba``: the surplus is *pseudo-deleted*: Eq. 2's proportions (× α, capped at 1) of each cell get
  their bias group's trigger, labels unchanged; nothing is deleted.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from bdray.fairness import cell_counts, select_for_trigger

STRATEGIES = ("normal", "undersampling", "reweighting", "adversarial", "dba")


def trigger_marks(y: torch.Tensor, a: torch.Tensor, alpha: float, seed: int) -> torch.Tensor:
    """N×K booleans: which samples carry task k's trigger (Eq. 2 × α per cell, drawn by seed + k)."""
    marks = torch.zeros(y.shape, dtype=torch.bool)
    for k in range(y.shape[1]):
        marks[select_for_trigger(y[:, k], a, alpha, seed + k), k] = True
    return marks


def undersampling_keep(y: torch.Tensor, a: torch.Tensor, seed: int) -> torch.Tensor:
    """Indices kept by undersampling: samples in no task's surplus."""
    return torch.nonzero(~trigger_marks(y, a, 1.0, seed).any(1)).flatten()


def reweighing_weights(y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """N×K weights P(A)·P(Y) / P(A, Y) of each sample's cell, per task (empty cells never occur
    for a sample, so no division by zero)."""
    a = a.cpu().long()
    out = torch.empty(y.shape, dtype=torch.float32)
    for k in range(y.shape[1]):
        yk = y[:, k].cpu().long()
        n = cell_counts(yk, a).double()
        total = n.sum()
        expected = n.sum(1, keepdim=True) * n.sum(0, keepdim=True) / total  # N·P(A = i)·P(Y = j)
        weight = torch.where(n > 0, expected / n.clamp_min(1), torch.zeros_like(n))
        out[:, k] = weight[a, yk].float()
    return out


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; gradient multiplied by −``scale`` backward."""
    return _ReverseGradient.apply(x, scale)


class WithAdversary(nn.Module):
    """The classifier plus a head predicting the bias attribute from its features through gradient
    reversal: forward gives (task logits, adversary logits) from one pass."""

    def __init__(self, classifier: nn.Module, feature_dim: int, hidden: int, reversal_scale: float = 1.0):
        super().__init__()
        self.classifier = classifier
        self.reversal_scale = reversal_scale
        self.adversary = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.classifier(x, with_features=True)
        return logits, self.adversary(reverse_gradient(features, self.reversal_scale))
