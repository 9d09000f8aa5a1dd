"""The best configurations of a sweep, judged on what its search optimised (its objectives: the
validation split's metrics by default), for the last lines a sweep prints and the report page."""
from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

import numpy as np
import pandas as pd

from analysis.seeds import config_means
from bdray.sweep.spec import selection_split

SHOWN_METRICS = ("val_acc", "val_asr", "acc", "asr", "der")


def non_dominated(values: pd.DataFrame, modes: Sequence[str]) -> np.ndarray:
    """True for the rows no other row beats on every column (``modes``: "max" / "min" per column)."""
    signed = np.column_stack([values[c].to_numpy(float) * (1 if m == "max" else -1)
                              for c, m in zip(values.columns, modes)])
    keep = ~np.isnan(signed).any(axis=1)
    for i in np.flatnonzero(keep):
        better = (signed >= signed[i]).all(axis=1) & (signed > signed[i]).any(axis=1) & keep
        keep[i] = not better.any()
    return keep


def best_configurations(trials: pd.DataFrame, objectives: Sequence[Tuple[str, str]], limit: int = 5) -> pd.DataFrame:
    """Per method, the configurations (seed replicas averaged) that are best on ``objectives``: the
    single best for one objective, the non-dominated ones for several (sorted by the first; at most
    ``limit``).  Collapsed configurations never count.  Empty when no trial has the objectives."""
    metrics = [m for m, _ in objectives]
    done = trials[trials["status"] == "TERMINATED"] if "status" in trials else trials
    if not len(done) or not set(metrics) <= set(done):
        return done.iloc[:0]
    means = config_means(done, [*metrics, *[m for m in SHOWN_METRICS if m not in metrics], "collapsed"])
    if "collapsed" in means:
        means = means[~(means["collapsed"] > 0.5)]
    picked = []
    for _, part in means.groupby("method", sort=False) if "method" in means else [(None, means)]:
        part = part.dropna(subset=metrics)
        if not len(part):
            continue
        first, mode = objectives[0]
        if len(objectives) == 1:
            best = part.loc[[part[first].idxmax() if mode == "max" else part[first].idxmin()]]
        else:
            best = part[non_dominated(part[metrics], [m for _, m in objectives])]
            best = best.sort_values(first, ascending=mode == "min").head(limit)
        picked.append(best)
    return pd.concat(picked, ignore_index=True) if picked else means.iloc[:0]


def summary_lines(trials: pd.DataFrame, objectives: Sequence[Tuple[str, str]], params: Iterable[str]) -> List[str]:
    """Lines naming the best configuration(s): the swept values, the objective and test metrics."""
    best = best_configurations(trials, objectives)
    if not len(best):
        return []
    split = selection_split(objectives)
    goal = ", ".join(f"{m} {d}" for m, d in objectives)
    lines = [f"best configuration{'s' if len(best) > 1 else ''} ({goal}; chosen on the {split} split):"]
    params = [p for p in params if p in best and p != "method"]
    for row in best.itertuples(index=False):
        row = row._asdict()
        setting = ", ".join(f"{p}={format_value(row[p])}" for p in params) or "the base config"
        shown = [m for m in (*[m for m, _ in objectives], *SHOWN_METRICS) if m in row and pd.notna(row[m])]
        shown = list(dict.fromkeys(shown))
        seeds = f" over {int(row['seeds'])} seeds" if row.get("seeds", 1) > 1 else ""
        values = " ".join(f"{m}={row[m]:.4f}" for m in shown)
        lines.append(f"  {row.get('method', '')}: {setting} -> {values}{seeds}")
    return lines


def format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
