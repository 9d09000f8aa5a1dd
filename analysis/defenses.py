"""Tables and figures of the training-time defense papers, rebuilt from a trials table.

- ``robustness_table``: rows poisoning rate × defense, columns attack × {ASR, CA} (CBD Table 2).
- ``comparison_table``: rows attack, one "ACC/ASR" column per defense (PT Table 2), over every
  defense of the sweep (``sweeps/benchmark.py``: all of them against every attack).
- ``clean_cost_table``: each defense's accuracy cost on the clean model (no attack).
- ``isolation_table`` / ``plot_isolation``: isolation precision and recall against the isolation
  ratio, per method (ABL; PT with M′ and with M_s).
- ``pareto_mask`` / ``plot_pareto``: the non-dominated trials of an ``acc`` max / ``asr`` min study.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from analysis.seeds import ci95, has_replicas

# no defense; post-training with clean data, data-free; training-time
DEFENSE_ORDER = ("no_defense", "finetune", "fineprune", "nad", "neural_cleanse", "fst", "anp", "ibau", "rnp", "sau", "dhbe",
                 "clp", "abl", "pt", "cbd")
# the training-time papers' names; the post-training defenses keep their method names, as in the
# DHBE tables (``attack_defense.md``: "dhbe ACC", "finetune ASR")
DEFENSE_NAMES = {"no_defense": "None", "abl": "ABL", "pt": "PT", "cbd": "CBD"}
ATTACK_NAMES = {"badnets": "BadNets", "blend": "Blend", "sig": "SIG", "wanet": "WaNet", "trojan": "Trojan",
                "clean_label": "Clean-label", "input_aware": "Dynamic", "lf": "LF", "bpp": "BppAttack",
                "adaptive_blend": "Adaptive-Blend", "refool": "Refool", "clean": "Clean model"}
RATE_COLUMN = "backdoor_poison_rate"


def _ordered(values, order) -> list:
    present = list(dict.fromkeys(values))
    return [v for v in order if v in present] + [v for v in present if v not in order]


def robustness_table(trials: pd.DataFrame) -> pd.DataFrame:
    """ASR and CA (clean accuracy), in %, per poisoning rate × defense (rows) and attack (columns)."""
    df = trials.dropna(subset=[RATE_COLUMN])
    attacks = _ordered(df["attack"], ATTACK_NAMES)
    methods = _ordered(df["method"], DEFENSE_ORDER)
    grouped = df.groupby([RATE_COLUMN, "method", "attack"])[["asr", "acc"]].mean() * 100
    half = df.groupby([RATE_COLUMN, "method", "attack"])[["asr", "acc"]].agg(ci95) * 100 if has_replicas(df) else None
    rows = []
    for rate in sorted(df[RATE_COLUMN].unique()):
        for method in methods:
            row = {"poisoning rate": f"{rate:.0%}" if rate >= 0.01 else f"{rate:.1%}",
                   "defense": DEFENSE_NAMES.get(method, method)}
            for attack in attacks:
                key = (rate, method, attack)
                name = ATTACK_NAMES.get(attack, attack)
                for metric, column in (("asr", f"{name} ASR"), ("acc", f"{name} CA")):
                    row[column] = grouped.loc[key, metric] if key in grouped.index else np.nan
                    if half is not None:  # seed replicas: 95 % CI half-width, in points
                        row[f"{column} ±"] = half.loc[key, metric] if key in half.index else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def plot_robustness(trials: pd.DataFrame, path: str, title: str | None = None) -> None:
    """ASR (left) and clean accuracy (right) against the poisoning rate: one colour per attack,
    one line style per defense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = trials.dropna(subset=[RATE_COLUMN])
    attacks = _ordered(df["attack"], ATTACK_NAMES)
    methods = _ordered(df["method"], DEFENSE_ORDER)
    styles = ["o--", "s-", "^-.", "d:"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for a, attack in enumerate(attacks):
        for m, method in enumerate(methods):
            part = df[(df["attack"] == attack) & (df["method"] == method)].groupby(RATE_COLUMN)[["asr", "acc"]].mean()
            if part.empty:
                continue
            label = f"{ATTACK_NAMES.get(attack, attack)} · {DEFENSE_NAMES.get(method, method)}"
            for ax, metric in zip(axes, ("asr", "acc")):
                ax.plot(part.index * 100, part[metric] * 100, styles[m % len(styles)], color=f"C{a}", label=label)
    rates = sorted(df[RATE_COLUMN].unique())
    for ax, name in zip(axes, ("ASR (%)", "clean accuracy (%)")):
        ax.set_xscale("log")
        ax.set_xticks([r * 100 for r in rates], [f"{r * 100:g}" for r in rates])
        ax.minorticks_off()
        ax.set_xlabel("poisoning rate (%)")
        ax.set_ylabel(name)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(title or "robustness to the poisoning rate")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# a cell whose model sends at least this share of the clean test images to one class says so
SKEWED_SHARE = 0.5
SKEW_NOTE = ("\"one class: p %\": the defended model sends p % of the clean test images to one class (mean over "
             "seed replicas; at ≥ 90 % bdray counts it `collapsed`): its low ASR is no defense.")


def _skew_suffix(trials: pd.DataFrame) -> pd.Series:
    """Per (attack, method): " (one class: p %)" where the mean ``pred_majority_share`` is at least
    ``SKEWED_SHARE``, else ""."""
    if "pred_majority_share" not in trials:
        return pd.Series(dtype=object)
    share = trials.groupby(["attack", "method"])["pred_majority_share"].mean()
    return share.map(lambda p: f" (one class: {p:.0%})" if p >= SKEWED_SHARE else "")


def comparison_table(trials: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Rows: attack; one column per defense holding "ACC/ASR" as fractions (the PT paper's style);
    a cell whose model sends most clean images to one class says so (``SKEW_NOTE``)."""
    attacks = _ordered(trials["attack"], ATTACK_NAMES)
    methods = _ordered(trials["method"], DEFENSE_ORDER)
    grouped = trials.groupby(["attack", "method"])[["acc", "asr"]].mean()
    half = trials.groupby(["attack", "method"])[["acc", "asr"]].agg(ci95) if has_replicas(trials) else None
    skewed = _skew_suffix(trials)
    rows = []
    for attack in attacks:
        row = {"attack": ATTACK_NAMES.get(attack, attack), "dataset": ", ".join(
            sorted(trials.loc[trials["attack"] == attack, "dataset"].astype(str).unique()))}
        for method in methods:
            label = "Baseline" if method == "no_defense" else DEFENSE_NAMES.get(method, method)
            if (attack, method) in grouped.index:
                acc, asr = grouped.loc[(attack, method)]
                if half is None:
                    row[f"{label} ACC/ASR"] = f"{acc:.{digits}f}/{asr:.{digits}f}"
                else:  # mean ± 95 % CI half-width over the seed replicas
                    acc_h, asr_h = half.loc[(attack, method)]
                    row[f"{label} ACC/ASR"] = f"{acc:.{digits}f}±{acc_h:.{digits}f}/{asr:.{digits}f}±{asr_h:.{digits}f}"
                row[f"{label} ACC/ASR"] += skewed.get((attack, method), "")
            else:
                row[f"{label} ACC/ASR"] = ""
        rows.append(row)
    return pd.DataFrame(rows)


def clean_cost_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Each defense on the clean model (``attack == "clean"``: nothing poisoned): its accuracy and
    what it cost, in points, against the model it started from (``teacher_acc``, the post-training
    defenses) or, for the defenses that train from scratch, against plain training (``no_defense``
    or ``backdoor`` rows of the same sweep).  A defense worth deploying costs little here."""
    clean = trials[trials["attack"] == "clean"]
    if clean.empty:
        return pd.DataFrame()
    plain = clean[clean["method"].isin(("no_defense", "backdoor"))]["acc"].mean()
    rows = []
    for method in _ordered(clean["method"], DEFENSE_ORDER):
        part = clean[clean["method"] == method]
        teacher = part["teacher_acc"].mean() if "teacher_acc" in part else np.nan
        reference, against = (teacher, "the model it started from") if np.isfinite(teacher) else (plain, "plain training")
        acc = part["acc"].mean()
        rows.append({"defense": DEFENSE_NAMES.get(method, method), "trials": len(part), "clean ACC": acc * 100,
                     "reference ACC": reference * 100, "ACC cost": (reference - acc) * 100, "against": against,
                     "ASR (trigger on a clean model)": part["asr"].mean() * 100})
    return pd.DataFrame(rows)


def isolation_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean isolation precision / recall per isolation ratio, per method -- for PT per isolating
    model (M′, M_s), for ABL per γ when γ varies."""
    parts = []
    groups = []
    for method, df in trials.groupby("method"):
        if "isolation_precision" not in df or df["isolation_precision"].isna().all() or "isolation_ratio" not in df:
            continue
        name = DEFENSE_NAMES.get(method, method)
        if method == "abl" and "gamma" in df and df["gamma"].nunique() > 1:  # ABL's isolation depends on γ
            groups += [(f"{name} γ={gamma:g}", part, "isolation_") for gamma, part in df.groupby("gamma")]
        elif method == "pt" and "base_isolation_precision" in df:
            groups += [(f"{name} M′", df, "isolation_"), (f"{name} M_s", df, "base_isolation_")]
        else:
            groups.append((name, df, "isolation_"))
    for label, df, prefix in groups:
        g = df.groupby("isolation_ratio")[[f"{prefix}precision", f"{prefix}recall"]].mean().reset_index()
        g.columns = ["isolation_ratio", "precision", "recall"]
        g.insert(0, "isolated by", label)
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def plot_isolation(trials: pd.DataFrame, path: str, title: str | None = None) -> None:
    """Precision (solid) and recall (dashed) of the isolated set against the isolation ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = isolation_table(trials)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, (who, g) in enumerate(table.groupby("isolated by", sort=False)):
        color = f"C{i}"
        g = g.sort_values("isolation_ratio")
        ax.plot(g["isolation_ratio"] * 100, g["precision"] * 100, "o-", color=color, label=f"{who} precision")
        ax.plot(g["isolation_ratio"] * 100, g["recall"] * 100, "s--", color=color, label=f"{who} recall")
    if RATE_COLUMN in trials and trials[RATE_COLUMN].nunique() == 1:
        ax.axvline(float(trials[RATE_COLUMN].iloc[0]) * 100, color="grey", lw=0.8, ls=":", label="poisoning rate")
    ax.set_xlabel("isolation ratio (% of the training set)")
    ax.set_ylabel("%")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "isolation quality")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def pareto_mask(acc: Sequence[float], asr: Sequence[float]) -> np.ndarray:
    """True for trials no other trial dominates (higher-or-equal acc and lower-or-equal asr, one strictly)."""
    from analysis.summary import non_dominated

    return non_dominated(pd.DataFrame({"acc": np.asarray(acc, dtype=float), "asr": np.asarray(asr, dtype=float)}),
                         ["max", "min"])


def selection_columns(trials: pd.DataFrame):
    """``(acc column, asr column, split)`` a front is chosen on: the validation split's ``val_acc`` /
    ``val_asr`` when every trial has them, else the test split's ``acc`` / ``asr``."""
    if {"val_acc", "val_asr"} <= set(trials) and len(trials) and trials[["val_acc", "val_asr"]].notna().all().all():
        return "val_acc", "val_asr", "validation"
    return "acc", "asr", "test"


def plot_pareto(trials: pd.DataFrame, path: str, title: str | None = None) -> pd.DataFrame:
    """Every trial's test (asr, acc), the non-dominated ones highlighted and joined, one colour per
    method; "non-dominated" is judged on the validation split when the trials have one
    (``selection_columns``), so the front is what a researcher would pick without the test set.
    Collapsed trials (one class predicted: ``asr`` ≈ 0 for free) are drawn as crosses and never
    enter a front.  Returns the non-dominated trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    fronts = []
    acc_on, asr_on, split = selection_columns(trials)
    for i, (method, df) in enumerate(trials.dropna(subset=["acc", "asr"]).groupby("method", sort=False)):
        color = f"C{i}"
        if "collapsed" in df:
            dead = df[df["collapsed"] == 1]
            if len(dead):
                ax.scatter(dead["asr"] * 100, dead["acc"] * 100, marker="x", s=30, color=color,
                           label=f"{method} collapsed (excluded)")
            df = df[df["collapsed"] != 1]
        mask = pareto_mask(df[acc_on], df[asr_on])
        ax.scatter(df["asr"] * 100, df["acc"] * 100, s=18, alpha=0.35, color=color, label=f"{method} trials")
        front = df[mask].sort_values("asr")
        ax.plot(front["asr"] * 100, front["acc"] * 100, "o-", color=color, ms=7, mec="black",
                label=f"{method} Pareto front ({split})")
        fronts.append(front)
    ax.set_xlabel("test ASR (%), lower is better")
    ax.set_ylabel("test ACC (%), higher is better")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"ACC vs ASR: non-dominated on the {split} split")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return pd.concat(fronts) if fronts else trials.iloc[:0]
