"""One call that turns a sweep folder into its figures and tables."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

from analysis.load import load_trials
from analysis.tables import markdown_table, trials_table
from analysis.tradeoff import plot_tradeoff


def write_report(sweep_dir: str, params: Sequence[str] = (), out_dir: str | None = None) -> Dict[str, str]:
    """Write ``tradeoff.png`` and ``trials.md`` (local folder) and return their paths."""
    trials = load_trials(sweep_dir)
    out = Path(out_dir or Path(sweep_dir) / "report")
    out.mkdir(parents=True, exist_ok=True)
    done = trials[trials["status"] == "TERMINATED"]
    reference = None
    if {"teacher_acc", "teacher_asr"} <= set(done.columns) and len(done):
        reference = {"acc": float(done["teacher_acc"].iloc[0]), "asr": float(done["teacher_asr"].iloc[0]),
                     "label": "backdoored model"}
    color_by = params[0] if params else None
    sweep = str(trials["sweep"].iloc[0]) if len(trials) else Path(sweep_dir).name
    fits = plot_tradeoff(done, str(out / "tradeoff.png"), color_by=color_by, reference=reference,
                         title=f"ACC–ASR trade-off: {sweep}")
    table = trials_table(trials, params=params)
    lines = [f"# Sweep `{sweep}`", "", f"{len(trials)} trials ({len(done)} finished).", ""]
    for name, fit in fits.items():
        if fit is None:
            lines.append(f"- {name}: no logistic fit (fewer than 4 distinct points, or ASR spread below 5 points)")
        else:
            lines.append(f"- {name}: logistic fit acc = {fit.low:.3f} + ({fit.high:.3f} - {fit.low:.3f}) / "
                         f"(1 + exp(-{fit.k:.3g}·(asr - {fit.mid:.3f}))), rmse {fit.rmse:.4f}")
    lines += ["", markdown_table(table)]
    (out / "trials.md").write_text("\n".join(lines))
    return {"tradeoff_png": str(out / "tradeoff.png"), "trials_md": str(out / "trials.md")}
