"""Detection metrics on one footing for every detector and isolation stage: the flagged set and
the per-sample suspicion scores against the recorded poisoned samples.

- ``detection_tpr`` (= ``detection_recall``): share of the poisoned samples that were flagged;
- ``detection_fpr``: share of the clean samples that were flagged;
- ``detection_precision``: poisoned share of the flagged set;
- ``detection_auroc``: the probability that a random poisoned sample scores above a random clean
  one (ties count one half) -- threshold-free, from the scores alone;
- ``flagged_samples``: how many were flagged.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` (higher = more suspicious) for the boolean
    ``positive`` mask, by the rank-sum (Mann-Whitney) identity with average ranks for ties."""
    scores = scores.detach().double().cpu()
    positive = positive.bool().cpu()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    # average rank (1-based) over each run of equal scores
    unique, counts = torch.unique_consecutive(sorted_scores, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    starts = ends - counts.double() + 1
    ranks[order] = torch.repeat_interleave((starts + ends) / 2, counts)
    rank_sum = float(ranks[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def detection_metrics(flagged: torch.Tensor, poisoned: torch.Tensor, scores: Optional[torch.Tensor] = None,
                      prefix: str = "detection_") -> Dict[str, float]:
    """The metrics of a flagged boolean mask (and, if given, scores) against the ``poisoned`` mask."""
    flagged, poisoned = flagged.bool().cpu(), poisoned.bool().cpu()
    if flagged.shape != poisoned.shape:
        raise ValueError(f"flagged has {tuple(flagged.shape)} entries, poisoned {tuple(poisoned.shape)}")
    hits = int((flagged & poisoned).sum())
    n_flagged, n_poisoned, n_clean = int(flagged.sum()), int(poisoned.sum()), int((~poisoned).sum())
    tpr = hits / n_poisoned if n_poisoned else math.nan
    return {f"{prefix}tpr": tpr, f"{prefix}recall": tpr,
            f"{prefix}fpr": (n_flagged - hits) / n_clean if n_clean else math.nan,
            f"{prefix}precision": hits / n_flagged if n_flagged else math.nan,
            f"{prefix}auroc": auroc(scores, poisoned) if scores is not None else math.nan,
            "flagged_samples": n_flagged}
