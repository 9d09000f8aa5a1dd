"""analysis/ rebuilds figures and tables from the Parquet alone."""
import math

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


def _replicated_trials():
    """Two attacks × two defenses, each configuration run with three seeds."""
    rows = []
    for attack, base in (("badnets", 0.9), ("blend", 0.8)):
        for method, drop in (("finetune", 0.0), ("dhbe", 0.1)):
            for i, noise in enumerate((-0.01, 0.0, 0.01)):
                rows.append({"trial_id": f"{attack}{method}{i}", "config_id": f"{attack}-{method}", "seed_index": i,
                             "method": method, "attack": attack, "dataset": "digits", "acc": base - drop + noise,
                             "asr": 0.1 + noise, "teacher_acc": 0.95, "teacher_asr": 1.0, "status": "TERMINATED"})
    return pd.DataFrame(rows)


def test_seed_replicas_give_means_and_t_intervals():
    from analysis.defenses import comparison_table
    from analysis.paper import attack_defense_table
    from analysis.seeds import ci95, config_means, has_replicas

    assert ci95([0.0, 1.0]) == pytest.approx(12.7062 * (0.5 ** 0.5) / 2 ** 0.5, rel=1e-4)
    assert math.isnan(ci95([0.3]))
    trials = _replicated_trials()
    assert has_replicas(trials) and not has_replicas(trials.drop(columns="seed_index"))
    means = config_means(trials, ["acc", "asr"]).set_index("config_id")
    assert means.loc["badnets-dhbe", "acc"] == pytest.approx(0.8) and (means["seeds"] == 3).all()
    assert means.loc["badnets-dhbe", "acc_ci95"] == pytest.approx(ci95([0.79, 0.8, 0.81]))
    table = attack_defense_table(trials).set_index("attack")
    assert table.loc["badnets", "dhbe ACC"] == pytest.approx(80.0)
    assert table.loc["badnets", "dhbe ACC ±"] == pytest.approx(100 * ci95([0.79, 0.8, 0.81]))
    assert math.isnan(table.loc["Mean", "dhbe ACC ±"])  # no CI for a mean of means
    assert list(table.columns[:4]) == ["backdoored ACC", "backdoored ASR", "finetune ACC", "finetune ACC ±"]
    cell = comparison_table(trials).set_index("attack").loc["Blend", "finetune ACC/ASR"]
    assert cell == f"0.800±{ci95([0.79, 0.8, 0.81]):.3f}/0.100±{ci95([0.09, 0.1, 0.11]):.3f}"
    # one seed each: no CI columns at all
    single = trials[trials["seed_index"] == 0]
    assert not any(c.endswith("±") for c in attack_defense_table(single).columns)


def test_stability_score_is_the_mean_pairwise_difference():
    from analysis.paper import stability_scores

    trials = pd.DataFrame({"lr": [0.01, 0.01, 0.1, 1.0], "acc": [0.9, 0.8, 0.7, 0.5], "asr": [0.2, 0.2, 0.2, 0.2]})
    (row,) = stability_scores(trials, ["lr", "not_swept"]).to_dict("records")
    # means per lr: 85, 70, 50 (points); pairwise |differences| 15, 35, 20 -> 23.33
    assert row["parameter"] == "lr" and row["values"] == 3
    assert row["acc stability"] == pytest.approx(70 / 3) and row["asr stability"] == pytest.approx(0.0)


def test_attack_defense_table_follows_the_defense_order_without_repeating_the_backdoored_model():
    """A benchmark sweep's Table 3: the columns follow analysis/defenses.DEFENSE_ORDER, and the
    no-defense trials (the backdoored model itself) are the "backdoored" columns, not a second copy."""
    from analysis.paper import attack_defense_table

    rows = [{"trial_id": m, "method": m, "attack": "badnets", "dataset": "digits", "acc": 0.9, "asr": 0.1,
             "teacher_acc": 0.95, "teacher_asr": 1.0, "status": "TERMINATED"}
            for m in ("sau", "no_defense", "dhbe", "finetune", "cbd")]
    columns = list(attack_defense_table(pd.DataFrame(rows)).columns)
    assert columns == ["attack", "backdoored ACC", "backdoored ASR", "finetune ACC", "finetune ASR", "sau ACC",
                       "sau ASR", "dhbe ACC", "dhbe ASR", "cbd ACC", "cbd ASR"]
