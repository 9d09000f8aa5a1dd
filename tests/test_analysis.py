"""analysis/ rebuilds figures and tables from the Parquet alone."""
import numpy as np
import pandas as pd
import pytest

from analysis import fit_logistic, markdown_table, plot_tradeoff, trials_table
from analysis.__main__ import main as analysis_main
from bdray.sweep import storage as S


def synthetic_trials(n=30, seed=0):
    rng = np.random.default_rng(seed)
    asr = np.sort(rng.uniform(0, 1, n))
    acc = 0.80 + 0.15 / (1 + np.exp(-12 * (asr - 0.4))) + rng.normal(0, 0.002, n)
    return pd.DataFrame({"sweep": "s", "trial_id": [f"t{i}" for i in range(n)], "method": "finetune",
                         "status": "TERMINATED", "student_lr": np.linspace(0.002, 0.02, n), "asr": asr, "acc": acc,
                         "asr_cond": asr, "ra": 1 - asr, "asr_x4": asr, "asr_x9": asr, "wall_time_s": 1.0,
                         "teacher_acc": 0.95, "teacher_asr": 1.0})


def test_logistic_fit_recovers_the_curve():
    df = synthetic_trials()
    fit = fit_logistic(df["asr"], df["acc"])
    assert fit is not None and fit.rmse < 0.005
    assert fit.low == pytest.approx(0.80, abs=0.01) and fit.high == pytest.approx(0.95, abs=0.01)
    assert fit.mid == pytest.approx(0.4, abs=0.05)


def test_no_fit_without_a_spread_of_asr():
    assert fit_logistic([0.01, 0.012, 0.011, 0.013], [0.98, 0.97, 0.99, 0.985]) is None
    assert fit_logistic([0.1, 0.5], [0.9, 0.8]) is None


def test_tradeoff_png_and_markdown(tmp_path):
    df = synthetic_trials()
    fits = plot_tradeoff(df, str(tmp_path / "t.png"), color_by="student_lr")
    assert fits["finetune"] is not None
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = markdown_table(trials_table(df, params=["student_lr"]))
    lines = md.strip().splitlines()
    assert lines[0].startswith("| trial_id | student_lr | acc | asr") and len(lines) == 2 + len(df)


def test_analysis_cli_rebuilds_report_from_parquet(tmp_path, capsys):
    sweep_dir = tmp_path / "s"
    S.write_parquet_atomic(synthetic_trials(), S.join(str(sweep_dir), "trials.parquet"))
    analysis_main([str(sweep_dir), "--param", "student_lr"])
    assert (sweep_dir / "report" / "tradeoff.png").exists()
    text = (sweep_dir / "report" / "trials.md").read_text()
    assert "## Trade-off fits" in text and "finetune (no data): acc = " in text and "30 trials (30 finished)" in text


def test_parquet_writes_are_atomic_and_append_replaces_by_key(tmp_path):
    path = str(tmp_path / "x" / "trials.parquet")
    a = pd.DataFrame({"sweep": ["s", "s"], "trial_id": ["1", "2"], "acc": [0.1, 0.2]})
    S.append_rows(path, a)
    b = pd.DataFrame({"sweep": ["s"], "trial_id": ["2"], "acc": [0.9]})
    merged = S.append_rows(path, b)
    assert sorted(merged["trial_id"]) == ["1", "2"] and float(merged.set_index("trial_id").loc["2", "acc"]) == 0.9
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["trials.parquet"]  # no temporary left behind
