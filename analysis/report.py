"""One call that turns a sweep folder into every figure and table that applies to it."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Sequence

import pandas as pd

from analysis import defenses, paper
from analysis.load import load_trials
from analysis.page import write_index
from analysis.seeds import CI_SUFFIX, config_means, has_replicas
from analysis.tables import METRIC_COLUMNS, markdown_table, trials_table
from analysis.tradeoff import plot_tradeoff
from bdray.sweep import storage as S


# the fairness sweeps' knobs and metrics, shown in trials.md when present
FAIRNESS_PARAMS = ("strategy", "targets", "bias_rate", "alpha", "trigger_colors", "trigger_size", "trigger_channel",
                   "seed")
FAIRNESS_METRICS = ("eacc", "opp", "odds", "collapsed", "boundary_error")
VALIDATION_METRICS = ("val_acc", "val_asr", "val_der")  # on the split held out of the training data
# averaged over seed replicas for the curves and fronts
SUMMARY_METRICS = (*METRIC_COLUMNS, "der", *VALIDATION_METRICS)


def _varies(df: pd.DataFrame, column: str) -> bool:
    return column in df and df[column].dropna().nunique() > 1


def write_report(sweep_dir: str, params: Sequence[str] = (), out_dir: str | None = None) -> Dict[str, str]:
    """Write PNG and Markdown files under ``<sweep_dir>/report`` (or ``out_dir``); return their paths.

    Always: ``trials.md`` and ``tradeoff.png`` (one scatter + logistic fit per method and clean-data
    fraction).  When the sweep has several attacks or trigger sizes: ``attack_defense.md`` (Table 3)
    and ``amplified.md`` (Table 6).  When DHBE's λ / student lr vary: ``lambda_sensitivity`` /
    ``lr_sensitivity`` (.png and .md).  When trigger and generator sizes vary: ``trigger_size.md``.
    Last, ``index.html``: one self-contained page with all of them (``analysis/page.py``).
    """
    if out_dir is None and S.is_uri(sweep_dir):  # s3:// / gs://: build locally, then upload
        with tempfile.TemporaryDirectory(prefix="bdray-report-") as tmp:
            local = write_report(sweep_dir, params, out_dir=tmp)
            remote = S.join(sweep_dir, "report")
            S.upload_folder(tmp, remote)
            return {name: S.join(remote, Path(path).name) for name, path in local.items()}
    trials = load_trials(sweep_dir)
    out = Path(out_dir or Path(sweep_dir) / "report")
    out.mkdir(parents=True, exist_ok=True)
    done = trials[trials["status"] == "TERMINATED"].copy()
    sweep = str(trials["sweep"].iloc[0]) if len(trials) else Path(sweep_dir).name
    paths: Dict[str, str] = {}

    # trade-off curves
    reference = None
    if {"teacher_acc", "teacher_asr"} <= set(done.columns) and len(done) and not _varies(done, "attack"):
        reference = {"acc": float(done["teacher_acc"].iloc[0]), "asr": float(done["teacher_asr"].iloc[0]),
                     "label": "backdoored model"}
    if len(done):
        done["curve"] = paper.curve_labels(done)
    replicas = has_replicas(done)
    # with seed replicas, curves and fronts are drawn on each configuration's mean (error bars: 95 % CI)
    points = config_means(done, SUMMARY_METRICS) if replicas else done
    shown = [p for p in params if p in trials]
    shown += [p for p in FAIRNESS_PARAMS if p not in shown and _varies(trials, p)]
    color_by = shown[0] if shown and done["method"].nunique() == 1 else None
    has_asr = len(done) and "asr" in done and done["asr"].notna().any()
    fits = plot_tradeoff(points, str(out / "tradeoff.png"), group="curve", color_by=color_by, reference=reference,
                         title=f"ACC–ASR trade-off: {sweep}") if has_asr else {}
    if has_asr:
        paths["tradeoff_png"] = str(out / "tradeoff.png")
    lines = [f"# Sweep `{sweep}`", "", f"{len(trials)} trials ({len(done)} finished)."]
    if "cpu_hours" in trials:  # resources held by the trials (attack artifacts not included)
        lines[-1] += (f" Compute: {trials['cpu_hours'].sum():.3g} CPU-hours, {trials['gpu_hours'].sum():.3g} "
                      "GPU-hours (resources held × wall time, trials only).")
    if has_asr:
        lines += ["", "## Trade-off fits", ""]
    for name, fit in fits.items():
        if fit is None:
            lines.append(f"- {name}: no logistic fit (fewer than 4 distinct points, or ASR spread below 5 points)")
        else:
            lines.append(f"- {name}: acc = {fit.low:.3f} + ({fit.high:.3f} - {fit.low:.3f}) / "
                         f"(1 + exp(-{fit.k:.3g}·(asr - {fit.mid:.3f}))), rmse {fit.rmse:.4f}")
    lines += ["", selection_line(trials)]
    metrics = [m for m in (*METRIC_COLUMNS, *VALIDATION_METRICS[:2], *FAIRNESS_METRICS)
               if m in trials and m not in shown and trials[m].notna().any()]
    lines += ["", "## Trials", "", markdown_table(trials_table(trials, params=["method", *shown], metrics=metrics))]
    (out / "trials.md").write_text("\n".join(lines))
    paths["trials_md"] = str(out / "trials.md")
    if replicas:
        table = config_means(done, metrics)
        cols = ["method", *[p for p in shown if p in table], "seeds"]
        for m in metrics:
            cols += [m, m + CI_SUFFIX]
        _write(out, "seeds", f"Mean and 95 % CI (t) over seeds, per configuration: {sweep}", table[cols], paths)
    swept = [p for p in shown if p != "method" and not p.endswith("seed")]  # a seed is no hyperparameter
    stability = paper.stability_scores(done, swept) if len(done) else pd.DataFrame()
    if len(stability):
        _write(out, "stability", "Stability per swept hyperparameter: mean |difference| of the metric's means "
               "between its values, in points (0 = insensitive over the range)", stability, paths)

    if len(done) and (_varies(done, "attack") or _varies(done, "backdoor_attack_trigger_size")):
        (out / "attack_defense.md").write_text("# ACC and ASR (%) per attack and defense (Table 3)\n\n"
                                               + markdown_table(paper.attack_defense_table(done)))
        (out / "amplified.md").write_text("# ASR (%) with amplified triggers ×1 / ×4 / ×9 (Table 6)\n\n"
                                          + markdown_table(paper.amplified_table(done)))
        paths["attack_defense_md"] = str(out / "attack_defense.md")
        paths["amplified_md"] = str(out / "amplified.md")

    dhbe = done[done["method"] == "dhbe"] if len(done) else done
    for param, stem in (("lambda_abr", "lambda_sensitivity"), ("student_lr", "lr_sensitivity")):
        if _varies(dhbe, param):
            paper.plot_sensitivity(dhbe, param, str(out / f"{stem}.png"), title=f"DHBE: sensitivity to {param}")
            table = paper.sensitivity_table(dhbe, param)
            table.columns = [" ".join(c).strip() if isinstance(c, tuple) else c for c in table.columns]
            score = paper.stability_scores(dhbe, [param]).drop(columns=["parameter"])
            (out / f"{stem}.md").write_text(f"# DHBE sensitivity to {param}\n\n" + markdown_table(table)
                                            + "\n## Stability score (mean |difference| between values, points)\n\n"
                                            + markdown_table(score))
            paths[f"{stem}_png"] = str(out / f"{stem}.png")
            paths[f"{stem}_md"] = str(out / f"{stem}.md")

    if _varies(dhbe, "trigger_gen_size") or (_varies(dhbe, "backdoor_attack_trigger_size")
                                             and "trigger_gen_size" in dhbe):
        grids = paper.trigger_size_grid(dhbe)
        text = ["# DHBE: actual trigger size (rows) × trigger-generator size (columns) (Fig. 11)", ""]
        for metric, grid in grids.items():
            text += [f"## {metric} (%)", "", markdown_table(grid.reset_index())]
        (out / "trigger_size.md").write_text("\n".join(text))
        paths["trigger_size_md"] = str(out / "trigger_size.md")
    paths.update(_training_defense_reports(done, out, sweep, points))
    if len(done) and "detection_auroc" in done and done["detection_auroc"].notna().any():
        from analysis.detection import detection_table

        _write(out, "detection", "Poisoned-sample detection (%) against the recorded poison indices",
               detection_table(done), paths)
    if len(done) and "boundary_error" in done and done["boundary_error"].notna().any():
        paths.update(_dba_toy_reports(sweep_dir, done[done["method"] == "dba_toy"], out))
    if len(done) and (done["method"] == "debias").any():
        paths.update(_debias_reports(done[done["method"] == "debias"], out))
    paths["index_html"] = str(write_index(out, trials, sweep, list(paths.values())))
    return paths


def _debias_reports(d: pd.DataFrame, out: Path) -> Dict[str, str]:
    """DBA's tables (1–6, 8–10) and figures, each when the trials hold what it needs."""
    from analysis import debias

    paths: Dict[str, str] = {}
    single = debias.single_task(d)
    if len(single):
        _write(out, "fairness_groups", "Per-group TPR (T=1) / TNR (T=0) and fairness, % (DBA Tables 1, 2, 5)",
               debias.group_rates_table(single), paths)
        _write(out, "fairness_average", "Mean over target attributes and seeds, % (DBA Tables 3, 4)",
               debias.average_table(single), paths)
        debias.plot_fairness(single, str(out / "fairness.png"))
        paths["fairness_png"] = str(out / "fairness.png")
    _write(out, "nonconvergence", "Runs whose predictions collapsed to one class (DBA Table 6)",
           debias.nonconvergence_table(d), paths)
    multi = debias.multi_attribute_table(d)
    if len(multi):
        _write(out, "multi_attribute", "Several targets at once: mean over tasks, % (DBA Table 8)", multi, paths)
    dba = single[single["strategy"] == "dba"]
    if _varies(dba, "trigger_size") or _varies(dba, "trigger_colors"):
        _write(out, "trigger_ablation", "Trigger colour and size (DBA Table 9)", debias.trigger_ablation_table(d),
               paths)
    if _varies(dba, "alpha"):
        _write(out, "alpha", "DBA: trigger proportion scale α", debias.alpha_table(d), paths)
        debias.plot_alpha(d, str(out / "alpha.png"))
        paths["alpha_png"] = str(out / "alpha.png")
    if (dba["trigger_channel"] == "implicit").any():
        _write(out, "safety", "Avoiding security risks: implicit backdoor deployments (DBA Table 10)",
               debias.safety_table(d), paths)
    return paths


def _dba_toy_reports(sweep_dir: str, toy: pd.DataFrame, out: Path) -> Dict[str, str]:
    from analysis import dba_toy
    from analysis.load import load_epochs

    paths: Dict[str, str] = {}
    _write(out, "boundary_error", "DBA toy study: Classification Boundary Error (Fig. 5)",
           dba_toy.boundary_error_table(toy), paths)
    dba_toy.plot_boundary_error(toy, str(out / "boundary_error.png"))
    paths["boundary_error_png"] = str(out / "boundary_error.png")
    rate = 0.8 if (toy["bias_rate"] == 0.8).any() else float(toy["bias_rate"].max())
    dba_toy.plot_boundaries(toy, load_epochs(sweep_dir), str(out / "boundaries.png"), rate,
                            seed=int(toy["seed"].min()))
    paths["boundaries_png"] = str(out / "boundaries.png")
    return paths


def selection_line(trials: pd.DataFrame) -> str:
    """Which split the sweep chose its hyperparameters on (``selected_on``), in words."""
    split = trials["selected_on"].dropna().unique().tolist() if "selected_on" in trials else []
    if split == ["validation"]:
        size = ""
        if "backdoor_val_fraction" in trials:
            size = f" ({float(trials['backdoor_val_fraction'].iloc[0]):.0%} of the training data, never trained on)"
        return (f"Hyperparameters were chosen on the **validation** split{size}: the search saw `val_*` metrics "
                "only; `acc` / `asr` are the untouched test split.")
    if split == ["test"]:
        return ("Hyperparameters were chosen on the **test** split (no validation split: `--val-fraction 0`, "
                "or a test metric as `--objective`): test numbers are optimistic.")
    return "Selection split: " + (", ".join(map(str, split)) or "not recorded (a sweep from before `selected_on`)") + "."


def _write(out: Path, stem: str, title: str, table: pd.DataFrame, paths: Dict[str, str], note: str = "") -> None:
    (out / f"{stem}.md").write_text(f"# {title}\n\n" + markdown_table(table) + (f"\n{note}\n" if note else ""))
    paths[f"{stem}_md"] = str(out / f"{stem}.md")


def _training_defense_reports(done: pd.DataFrame, out: Path, sweep: str, points: pd.DataFrame) -> Dict[str, str]:
    """Robustness table (CBD Table 2), comparison table (PT Table 2), isolation quality and the
    Pareto front (on ``points``: the trials, or with seed replicas each configuration's means),
    each when the sweep has what it needs."""
    paths: Dict[str, str] = {}
    if len(points) and int(points[["acc", "asr"]].notna().all(axis=1).sum()) >= 2:
        front = defenses.plot_pareto(points, str(out / "pareto.png"), title=f"Pareto front: {sweep}")
        paths["pareto_png"] = str(out / "pareto.png")
        acc, asr, split = defenses.selection_columns(points)
        cols = [c for c in ("method", "attack", "isolation_ratio", "gamma", "freeze_fraction", "clean_lr",
                            "isolated_lr", "mi_weight", "val_acc", "val_asr", "acc", "asr")
                if c in front and front[c].notna().any()]
        _write(out, "pareto", f"Non-dominated on the {split} split ({acc} max, {asr} min): {sweep}", front[cols], paths)
    training = done[done["method"].isin(defenses.DEFENSE_ORDER)] if len(done) else done  # defenses, not detectors
    if len(training) and _varies(training, defenses.RATE_COLUMN):
        _write(out, "robustness", "ASR and CA (%) per poisoning rate, defense and attack (CBD Table 2)",
               defenses.robustness_table(training), paths)
        defenses.plot_robustness(training, str(out / "robustness.png"), title=f"Robustness: {sweep}")
        paths["robustness_png"] = str(out / "robustness.png")
    if len(training) and _varies(training, "attack") and training["method"].nunique() >= 2:
        _write(out, "comparison", "ACC/ASR of each defense per attack (PT Table 2 layout)",
               defenses.comparison_table(training), paths, note=defenses.SKEW_NOTE)
    if len(done) and "attack" in done and (done["attack"] == "clean").any():
        _write(out, "clean_cost", "Each defense on the clean model (nothing poisoned): its accuracy cost, in points",
               defenses.clean_cost_table(done), paths)
    if len(done) and "isolation_precision" in done and done["isolation_precision"].notna().any():
        table = defenses.isolation_table(done)
        if len(table):
            _write(out, "isolation", "Isolation precision and recall per isolation ratio", table, paths)
            defenses.plot_isolation(done, str(out / "isolation.png"), title=f"Isolation quality: {sweep}")
            paths["isolation_png"] = str(out / "isolation.png")
    cbd = done[done["method"] == "cbd"] if len(done) else done
    if _varies(cbd, "mi_weight"):
        paper.plot_sensitivity(cbd, "mi_weight", str(out / "mi_weight_sensitivity.png"),
                               title="CBD: sensitivity to the MI weight λ")
        table = paper.sensitivity_table(cbd, "mi_weight", metrics=("acc", "asr", "mean_weight_poisoned"))
        table.columns = [" ".join(c).strip() if isinstance(c, tuple) else c for c in table.columns]
        _write(out, "mi_weight_sensitivity", "CBD: sensitivity to the MI weight λ", table, paths)
        paths["mi_weight_sensitivity_png"] = str(out / "mi_weight_sensitivity.png")
    return paths
