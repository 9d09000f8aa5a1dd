"""Seed replicas in the analysis: a sweep run with ``--seeds N`` has N trials per configuration
(``config_id``, ``seed_index``); its tables and plots show the mean and a 95 % confidence interval
(Student's t, n - 1 degrees of freedom) per configuration."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

CI_SUFFIX = "_ci95"


def has_replicas(trials: pd.DataFrame) -> bool:
    """Whether some configuration of the sweep ran with more than one seed."""
    return ("config_id" in trials and "seed_index" in trials and len(trials)
            and bool((trials.groupby("config_id")["seed_index"].nunique() > 1).any()))


def ci95(values: Iterable[float]) -> float:
    """Half-width of the 95 % confidence interval of the mean (t distribution); NaN below 2 values."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(x) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def config_means(trials: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per configuration (``config_id``; each trial its own when the column is missing):
    its first trial's other columns, the metrics' means, ``<metric>_ci95`` and ``seeds`` (count)."""
    metrics = [m for m in metrics if m in trials]
    key = "config_id" if "config_id" in trials else "trial_id"
    groups = trials.groupby(key, sort=False)
    first = groups.first()
    out = first.drop(columns=[m for m in metrics if m in first])
    means = groups[metrics].mean()
    for m in metrics:
        out[m] = means[m]
        out[m + CI_SUFFIX] = groups[m].agg(ci95)
    out["seeds"] = groups.size()
    return out.reset_index()

