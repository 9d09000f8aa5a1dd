"""The DHBE paper's tables and figures, rebuilt from a trials table.

- ``curve_labels``: one trade-off curve per method and clean-data fraction (Fig. 3).
- ``attack_defense_table``: ACC and ASR per method per attack, with a mean row (Table 3).
- ``amplified_table``: ASR at ×1/×4/×9 per method per trigger, with a mean row (Table 6).
- ``plot_sensitivity``: acc / asr / activation difference against a swept value (Figs. 8, 10).
- ``stability_scores``: per swept hyperparameter, how much acc / asr move across its range.
- ``trigger_size_grid``: acc and asr over actual trigger size × generator size (Fig. 11).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import pandas as pd

from analysis.defenses import DEFENSE_ORDER
from analysis.seeds import ci95, has_replicas

# the defense tables' order (analysis/defenses.py); the DHBE tables' five keep theirs within it
METHOD_ORDER = tuple(m for m in DEFENSE_ORDER if m != "no_defense")


def curve_labels(trials: pd.DataFrame) -> pd.Series:
    """'finetune (4% clean)', ..., 'dhbe (no data)'."""
    def label(row):
        frac = row.get("clean_fraction")
        if frac is None or (isinstance(frac, float) and np.isnan(frac)):
            return f"{row['method']} (no data)"
        return f"{row['method']} ({frac:.0%} clean)"

    return trials.apply(label, axis=1)


def attack_labels(trials: pd.DataFrame) -> pd.Series:
    size_col = next((c for c in ("backdoor_attack_trigger_size", "attack_trigger_size") if c in trials), None)
    if size_col is None:
        return trials["attack"].astype(str)
    sizes = trials[size_col]
    return trials["attack"].astype(str) + sizes.map(lambda s: "" if pd.isna(s) else f" {int(s)}×{int(s)}")


def _methods(trials: pd.DataFrame) -> list:
    present = list(dict.fromkeys(trials["method"]))
    return [m for m in METHOD_ORDER if m in present] + [m for m in present if m not in METHOD_ORDER]


def attack_defense_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Rows: attack (with trigger size); columns: backdoored and each method's ACC and ASR (in %)."""
    df = trials.assign(attack_label=attack_labels(trials))
    out = pd.DataFrame(index=sorted(df["attack_label"].unique()))
    if {"teacher_acc", "teacher_asr"} <= set(df.columns):
        backdoored = df.groupby("attack_label")[["teacher_acc", "teacher_asr"]].mean() * 100
        out["backdoored ACC"], out["backdoored ASR"] = backdoored["teacher_acc"], backdoored["teacher_asr"]
    replicas = has_replicas(df)
    for method in _methods(df):
        if method == "no_defense" and "backdoored ACC" in out:
            continue  # the backdoored model itself: its columns are already there
        grouped = df[df["method"] == method].groupby("attack_label")[["acc", "asr"]]
        part = grouped.mean() * 100
        out[f"{method} ACC"], out[f"{method} ASR"] = part["acc"], part["asr"]
        if replicas:  # seed replicas: the 95 % CI half-width of each mean, in points
            half = grouped.agg(ci95) * 100
            out.insert(out.columns.get_loc(f"{method} ACC") + 1, f"{method} ACC ±", half["acc"])
            out[f"{method} ASR ±"] = half["asr"]
    out.loc["Mean"] = out.mean(numeric_only=True)
    if replicas:  # a mean of CI half-widths is no CI
        out.loc["Mean", [c for c in out.columns if c.endswith(" ±")]] = np.nan
    return out.rename_axis("attack").reset_index()


def amplified_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Rows: trigger; columns: each method's ASR with the trigger pasted ×1, ×4, ×9 (in %)."""
    df = trials.assign(attack_label=attack_labels(trials))
    out = pd.DataFrame(index=sorted(df["attack_label"].unique()))
    for method in _methods(df):
        part = df[df["method"] == method].groupby("attack_label")[["asr", "asr_x4", "asr_x9"]].mean() * 100
        for col, name in (("asr", "x1"), ("asr_x4", "x4"), ("asr_x9", "x9")):
            out[f"{method} {name}"] = part[col]
    out.loc["Mean ASR"] = out.mean(numeric_only=True)
    return out.rename_axis("trigger").reset_index()


def sensitivity_table(trials: pd.DataFrame, param: str,
                      metrics: Sequence[str] = ("acc", "asr", "asr_x9", "act_l2_logits", "collapsed")) -> pd.DataFrame:
    """Mean, std, 95 % CI half-width and count of each metric per value of ``param`` (``collapsed``'
    mean is the share of trials whose model predicts one class: their ``asr`` ≈ 0 is no defense)."""
    cols = [m for m in metrics if m in trials]
    return trials.groupby(param)[cols].agg(["mean", "std", ("ci95", ci95), "count"]).reset_index()


def stability_scores(trials: pd.DataFrame, params: Sequence[str], metrics: Sequence[str] = ("acc", "asr")
                     ) -> pd.DataFrame:
    """Per swept hyperparameter: the stability score of each metric, the mean absolute difference
    between the metric's means at every pair of the parameter's values (in points; 0: the result
    does not depend on the parameter over the swept range).  Other parameters are averaged over."""
    rows = []
    for param in params:
        if param not in trials or trials[param].dropna().nunique() < 2:
            continue
        row = {"parameter": param, "values": int(trials[param].dropna().nunique()),
               "range": f"{trials[param].min():.4g}–{trials[param].max():.4g}"
               if pd.api.types.is_numeric_dtype(trials[param]) else ", ".join(map(str, sorted(trials[param].unique())))}
        for metric in metrics:
            if metric not in trials:
                continue
            means = trials.groupby(param)[metric].mean().dropna().to_numpy() * 100
            diffs = np.abs(means[:, None] - means[None, :])[np.triu_indices(len(means), k=1)]
            row[f"{metric} stability"] = float(diffs.mean()) if len(diffs) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def plot_sensitivity(trials: pd.DataFrame, param: str, path: str, title: str | None = None) -> None:
    """acc and asr (left axis, %) and the logits' L2 activation difference (right axis) against ``param``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = trials.dropna(subset=[param]).sort_values(param)
    grouped = df.groupby(param)
    x = np.array(list(grouped.groups))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for metric, style in (("acc", "o-"), ("asr", "s-"), ("asr_x9", "^--")):
        if metric in df:
            ax.plot(x, grouped[metric].mean() * 100, style, label=metric)
            ax.scatter(df[param], df[metric] * 100, s=8, alpha=0.4)
    ax.set_ylabel("%")
    ax.set_ylim(-3, 103)
    positive = x[x > 0]
    if len(positive) and positive.max() / positive.min() >= 20:
        ax.set_xscale("symlog", linthresh=positive.min())
    ax.set_xlabel(param)
    if "act_l2_logits" in df:
        ax2 = ax.twinx()
        ax2.plot(x, grouped["act_l2_logits"].mean(), "k:", label="activation diff (L2, logits)")
        ax2.set_ylabel("activation difference (L2, logits)")
        ax2.legend(loc="center right", fontsize=8)
    ax.legend(loc="center left", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"sensitivity to {param}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def trigger_size_grid(trials: pd.DataFrame) -> Dict[str, pd.DataFrame]:
    """acc and asr (in %) pivoted over actual trigger size (rows) × generator size (columns)."""
    rows, cols = "backdoor_attack_trigger_size", "trigger_gen_size"
    return {m: (trials.pivot_table(index=rows, columns=cols, values=m, aggfunc="mean") * 100)
            for m in ("acc", "asr") if m in trials}
