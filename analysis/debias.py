"""DBA's fairness tables and figures from the ``debias`` trials' Parquet (DBA paper Tables 1–6, 8–10).

- ``group_rates_table`` (Tables 1, 2, 5): per strategy two rows, T = 1 (TPR per bias group) and
  T = 0 (TNR per bias group), with Opp/Odds/EAcc/Acc, in %.
- ``average_table`` (Tables 3, 4): per bias attribute and strategy, the mean over target attributes
  and seeds; Opp/Odds average only the runs that converged.
- ``nonconvergence_table`` (Table 6): runs whose predictions collapsed to one class, per strategy.
- ``multi_attribute_table`` (Table 8): multi-task runs (several targets at once), normal vs DBA.
- ``trigger_ablation_table`` (Table 9) and ``alpha_table``/``plot_alpha`` (the α curve).
- ``safety_table`` (Table 10): EAcc, parameters and FLOPs of the pixel-trigger model and of the
  implicit model deployed by internal padding and by equivalent pruning.
"""
from __future__ import annotations

import json

import pandas as pd

from bdray.methods.fairness.debias_strategies import STRATEGIES

METRICS = ("opp", "odds", "eacc", "acc")
LABELS = {"normal": "Normal", "undersampling": "Undersampling", "reweighting": "Reweighting",
          "adversarial": "Adversarial Learning", "dba": "DBA"}


def _tasks(trials: pd.DataFrame) -> pd.Series:
    return trials["targets"].map(lambda t: tuple(json.loads(t)) if isinstance(t, str) else tuple(t))


def single_task(trials: pd.DataFrame) -> pd.DataFrame:
    d = trials[trials["method"] == "debias"] if "method" in trials else trials
    return d[_tasks(d).map(len) == 1]


def _order(strategies) -> list:
    return [s for s in STRATEGIES if s in set(strategies)]


def _pct(value: float) -> float:
    return round(100 * value, 2) if pd.notna(value) else float("nan")


def group_rates_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Tables 1, 2 and 5: means over seeds, per target attribute (a ``task`` column when the trials
    hold several) and strategy."""
    d = single_task(trials)
    tasks = _tasks(d).map(lambda t: t[0])
    rows = []
    for task in sorted(tasks.unique()):
        for strategy in _order(d.loc[tasks == task, "strategy"]):
            part = d[(tasks == task) & (d["strategy"] == strategy)]
            ok = part[part["collapsed"] == 0]
            summary = {m: _pct(ok[m].mean()) if m in ("opp", "odds") else _pct(part[m].mean()) for m in METRICS}
            for t, rate in ((1, "tpr"), (0, "tnr")):
                row = {"task": task, "method": LABELS[strategy], "target": f"T={t}",
                       "bias A=1": _pct(part[f"{rate}_a1"].mean()), "bias A=0": _pct(part[f"{rate}_a0"].mean())}
                row.update(summary if t == 1 else {m: "" for m in METRICS})
                rows.append(row)
    out = pd.DataFrame(rows)
    return out.drop(columns="task") if len(out) and out["task"].nunique() == 1 else out


def average_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Tables 3 and 4: per bias attribute and strategy, means over targets and seeds (%)."""
    d = single_task(trials)
    rows = []
    for bias in sorted(d["bias_attribute"].dropna().unique()):
        for strategy in _order(d["strategy"]):
            part = d[(d["bias_attribute"] == bias) & (d["strategy"] == strategy)]
            ok = part[part["collapsed"] == 0]
            rows.append({"bias": bias, "method": LABELS[strategy], "targets": _tasks(part).nunique(),
                         "runs": len(part), **{m: _pct((ok if m in ("opp", "odds") else part)[m].mean())
                                               for m in METRICS}})
    return pd.DataFrame(rows)


def nonconvergence_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 6: per strategy, how many runs collapsed to predicting one class."""
    d = trials[trials["method"] == "debias"] if "method" in trials else trials
    rows = [{"method": LABELS[s], "non-converged": int(d.loc[d["strategy"] == s, "collapsed"].fillna(0).sum()),
             "runs": int((d["strategy"] == s).sum())} for s in _order(d["strategy"])]
    return pd.DataFrame(rows)


def multi_attribute_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 8: runs that classified several targets at once; the metrics are means over tasks."""
    d = trials[_tasks(trials).map(len) > 1]
    rows = []
    for bias in sorted(d["bias_attribute"].dropna().unique()):
        for strategy in _order(d["strategy"]):
            part = d[(d["bias_attribute"] == bias) & (d["strategy"] == strategy)]
            if len(part):
                rows.append({"method": f"{LABELS[strategy]}({bias})", "tasks": int(_tasks(part).map(len).max()),
                             "runs": len(part), **{m: _pct(part[m].mean()) for m in METRICS}})
    return pd.DataFrame(rows)


def _normal_opp(trials: pd.DataFrame) -> float:
    normal = single_task(trials)
    normal = normal[(normal["strategy"] == "normal") & (normal["collapsed"] == 0)]
    return float(normal["opp"].mean()) if len(normal) else float("nan")


def trigger_ablation_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 9: per trigger colour pair and size (DBA runs at α = 1), Opp/EAcc and whether the
    pseudo-deletion worked: Opp at most half of normal training's (same sweep)."""
    d = single_task(trials)
    base = _normal_opp(d)
    dba = d[(d["strategy"] == "dba") & (d["alpha"] == 1.0) & (d["trigger_channel"] == "pixels")]
    rows = []
    for (colors, locations, size), part in dba.groupby(["trigger_colors", "trigger_locations", "trigger_size"]):
        colors, locations = json.loads(colors), json.loads(locations)
        opp = float(part.loc[part["collapsed"] == 0, "opp"].mean())
        rows.append({"trigger (A=0 / A=1)": f"{colors[0]} {locations[0]} / {colors[1]} {locations[1]}",
                     "size (px)": int(size), "runs": len(part), "opp": _pct(opp), "eacc": _pct(part["eacc"].mean()),
                     "normal opp": _pct(base),
                     "result": "Success" if opp <= 0.5 * base else ("Fail" if pd.notna(base) else "n/a")})
    return pd.DataFrame(rows)


def alpha_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean metrics per α, over DBA runs with the trigger the α sweep used (the trigger of the
    α ≠ 1 runs), so that a trigger ablation in the same folder does not mix in."""
    d = single_task(trials)
    dba = d[(d["strategy"] == "dba") & (d["trigger_channel"] == "pixels")]
    varied = dba[dba["alpha"] != 1.0]
    if len(varied):
        trigger = varied[["trigger_size", "trigger_colors", "trigger_locations"]].mode().iloc[0]
        dba = dba[(dba[list(trigger.index)] == trigger).all(axis=1)]
    g = dba.groupby("alpha")
    out = pd.DataFrame({"runs": g.size(), "triggered_samples": g["triggered_samples"].mean(),
                        **{m: g[m].mean().map(_pct) for m in METRICS}}).reset_index()
    return out


def plot_alpha(trials: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = alpha_table(trials)
    base = _normal_opp(trials)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for metric, style in (("opp", "o-"), ("odds", "s-"), ("eacc", "^-")):
        ax.plot(table["alpha"], table[metric], style, label=metric)
    if pd.notna(base):
        ax.axhline(100 * base, color="grey", ls="--", label="normal opp")
    ax.set_xlabel("α (trigger proportion = min(1, α · Eq. 2))")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("DBA: effect of α")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def safety_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 10: EAcc, parameters and FLOPs of DBA with pixel triggers and of the implicit (RGBT)
    model deployed two ways; ``identical`` says whether the deployed outputs equal the RGBT model's."""
    d = single_task(trials)
    d = d[d["strategy"] == "dba"]
    rows = []
    implicit = d[d["trigger_channel"] == "implicit"]
    pixels = d[d["trigger_channel"] == "pixels"]
    if len(implicit):  # the pixel-trigger runs that differ from the implicit ones only in the channel
        same = ["alpha", "trigger_size", "trigger_locations", "targets", "bias_attribute", "dataset", "model", "epochs"]
        keys = implicit[same].drop_duplicates()
        pixels = pixels.merge(keys, on=same)
    if len(pixels):
        rows.append({"method": "DBA (pixel triggers)", "eacc": _pct(pixels["eacc"].mean()),
                     "params": int(pixels["params"].iloc[0]), "MFLOPs": round(pixels["flops"].iloc[0] / 1e6, 3),
                     "identical to RGBT": ""})
    for name, label in (("padding", "Implicit + Internal Padding"), ("pruning", "Implicit + Equivalent Pruning")):
        if len(implicit) and f"{name}_eacc" in implicit:
            rows.append({"method": label, "eacc": _pct(implicit[f"{name}_eacc"].mean()),
                         "params": int(implicit[f"{name}_params"].iloc[0]),
                         "MFLOPs": round(implicit[f"{name}_flops"].iloc[0] / 1e6, 3),
                         "identical to RGBT": "yes" if bool((implicit[f"{name}_identical"] == 1).all()) else "NO"})
    return pd.DataFrame(rows)


def plot_fairness(trials: pd.DataFrame, path: str) -> None:
    """Bars of Opp, Odds, EAcc and Acc per strategy (means over the single-task runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = single_task(trials)
    strategies = _order(d["strategy"])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    width = 0.8 / max(len(strategies), 1)
    for i, strategy in enumerate(strategies):
        part = d[d["strategy"] == strategy]
        ok = part[part["collapsed"] == 0]
        values = [100 * (ok if m in ("opp", "odds") else part)[m].mean() for m in METRICS]
        ax.bar([j + i * width for j in range(len(METRICS))], values, width, label=LABELS[strategy])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(METRICS))])
    ax.set_xticklabels(["Opp ↓", "Odds ↓", "EAcc ↑", "Acc ↑"])
    ax.set_ylabel("%")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Debiasing: fairness per method")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
