"""Fairness metrics and DBA's trigger proportions (methods.md §0 and §3.6).

For a binary target Y and a binary bias attribute A:

- per group a ∈ {0, 1}: ``tpr_a<a>`` = P(ŷ = 1 | y = 1, A = a), ``tnr_a<a>`` = P(ŷ = 0 | y = 0, A = a);
- ``opp``  = |TPR_a0 − TPR_a1|                       (equal opportunity gap)
- ``odds`` = (|TPR_a0 − TPR_a1| + |TNR_a0 − TNR_a1|)/2 (the DBA paper's *mean* form; fairlearn's
  ``equalized_odds_difference`` defaults to the max);
- ``eacc`` = (TPR_a0 + TNR_a0 + TPR_a1 + TNR_a1)/4    (accuracy with every (A, Y) cell weighted equally);
- ``acc``: plain accuracy.

A run whose predictions collapsed to one class (``collapsed`` = 1) did not converge: its ``opp``
and ``odds`` are NaN, so tables count it instead of reporting a meaningless perfect gap
(DBA Table 6).
"""
from __future__ import annotations

import math
from typing import Dict

import torch

FAIRNESS_NAMES = ("acc", "eacc", "opp", "odds", "tpr_a0", "tpr_a1", "tnr_a0", "tnr_a1", "collapsed")


def _rate(hit: torch.Tensor, mask: torch.Tensor) -> float:
    n = int(mask.sum())
    return float((hit & mask).sum()) / n if n else math.nan


def fairness_metrics(pred: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> Dict[str, float]:
    """All of ``FAIRNESS_NAMES`` for binary predictions ``pred``, targets ``y`` and groups ``a``."""
    pred, y, a = (t.flatten().long().cpu() for t in (pred, y, a))
    if not (len(pred) == len(y) == len(a)):
        raise ValueError(f"pred, y and a differ in length: {len(pred)}, {len(y)}, {len(a)}")
    for name, t in (("pred", pred), ("y", y), ("a", a)):
        if len(t) and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name} must be binary (0/1)")
    out: Dict[str, float] = {"acc": float((pred == y).float().mean()) if len(y) else math.nan}
    for g in (0, 1):
        in_group = a == g
        out[f"tpr_a{g}"] = _rate(pred == 1, in_group & (y == 1))
        out[f"tnr_a{g}"] = _rate(pred == 0, in_group & (y == 0))
    out["eacc"] = (out["tpr_a0"] + out["tnr_a0"] + out["tpr_a1"] + out["tnr_a1"]) / 4
    collapsed = len(pred) > 0 and int(pred.unique().numel()) == 1
    out["collapsed"] = float(collapsed)
    if collapsed:
        out["opp"] = out["odds"] = math.nan
    else:
        gap_tpr = abs(out["tpr_a0"] - out["tpr_a1"])
        gap_tnr = abs(out["tnr_a0"] - out["tnr_a1"])
        out["opp"] = gap_tpr
        out["odds"] = (gap_tpr + gap_tnr) / 2
    return out


def cell_counts(y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """N(i, j): the number of samples with A = i and Y = j, as a 2×2 tensor indexed [i, j]."""
    y, a = y.flatten().long().cpu(), a.flatten().long().cpu()
    return torch.bincount(a * 2 + y, minlength=4).reshape(2, 2)


def trigger_proportions(y: torch.Tensor, a: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """DBA's Eq. 2 per (A = i, Y = j) cell, scaled by α and capped at 1:
    min(1, α · max(N(i, j) − N(i, ¬j), 0) / N(i, j)); 0 for empty cells."""
    n = cell_counts(y, a).double()
    surplus = (n - n.flip(1)).clamp_min(0)
    ratio = torch.where(n > 0, surplus / n.clamp_min(1), torch.zeros_like(n))
    return (alpha * ratio).clamp(max=1.0)


def select_for_trigger(y: torch.Tensor, a: torch.Tensor, alpha: float, seed: int) -> torch.Tensor:
    """Indices (sorted) that get their bias group's trigger: in every cell, round(proportion · N(i, j))
    samples drawn by ``seed``."""
    y, a = y.flatten().long().cpu(), a.flatten().long().cpu()
    props = trigger_proportions(y, a, alpha)
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for i in (0, 1):
        for j in (0, 1):
            members = torch.nonzero((a == i) & (y == j)).flatten()
            k = int(round(float(props[i, j]) * len(members)))
            chosen.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.cat(chosen).sort().values


def task_fairness(pred: torch.Tensor, y: torch.Tensor, a: torch.Tensor, names) -> Dict[str, float]:
    """Fairness of K binary tasks at once (``pred``, ``y``: N×K).  One task: its metrics under the
    plain names.  Several (DBA's multi-attribute setting, Table 8): every task's metrics as
    ``<task>_<metric>`` and under the plain names their mean over tasks (``opp``/``odds`` over the
    tasks that did not collapse), with ``collapsed`` = 1 when any task collapsed."""
    if pred.dim() == 1:
        pred, y = pred[:, None], y[:, None]
    per_task = [fairness_metrics(pred[:, k], y[:, k], a) for k in range(pred.shape[1])]
    if len(per_task) == 1:
        return per_task[0]
    out: Dict[str, float] = {}
    for name, metrics in zip(names, per_task):
        out.update({f"{name}_{key}": value for key, value in metrics.items()})
    for key in FAIRNESS_NAMES:
        values = [m[key] for m in per_task if not math.isnan(m[key])]
        out[key] = sum(values) / len(values) if values else math.nan
    out["collapsed"] = float(any(m["collapsed"] for m in per_task))
    out["collapsed_tasks"] = float(sum(m["collapsed"] for m in per_task))
    return out
