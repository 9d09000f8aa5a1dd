"""Fairness metrics (methods.md §0), cross-checked against fairlearn, and DBA's Eq. 2 proportions."""
import math

import numpy as np
import pytest
import torch
from fairlearn.metrics import MetricFrame, equalized_odds_difference, true_negative_rate, true_positive_rate

from bdray.fairness import cell_counts, fairness_metrics, select_for_trigger, trigger_proportions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_rates_and_gaps_match_fairlearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    a = rng.integers(0, 2, 500)
    pred = np.where(rng.random(500) < 0.7, y, 1 - y)  # 70 % right, group-dependent by chance
    ours = fairness_metrics(torch.tensor(pred), torch.tensor(y), torch.tensor(a))
    frame = MetricFrame(metrics={"tpr": true_positive_rate, "tnr": true_negative_rate}, y_true=y, y_pred=pred,
                        sensitive_features=a)
    for g in (0, 1):
        assert ours[f"tpr_a{g}"] == pytest.approx(frame.by_group.loc[g, "tpr"])
        assert ours[f"tnr_a{g}"] == pytest.approx(frame.by_group.loc[g, "tnr"])
    # fairlearn's equalized-odds difference with agg="mean" is the paper's mean form, with the FPR gap
    # (= the TNR gap) in place of the TNR gap
    assert ours["odds"] == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=a, agg="mean"))
    assert ours["opp"] == pytest.approx(abs(frame.by_group.loc[0, "tpr"] - frame.by_group.loc[1, "tpr"]))
    assert ours["eacc"] == pytest.approx(frame.by_group.to_numpy().mean())
    assert ours["acc"] == pytest.approx((pred == y).mean())
    assert ours["collapsed"] == 0.0


def test_collapsed_predictions_leave_opp_and_odds_empty():
    y = torch.tensor([0, 1, 0, 1])
    a = torch.tensor([0, 0, 1, 1])
    m = fairness_metrics(torch.ones(4, dtype=torch.long), y, a)
    assert m["collapsed"] == 1.0 and math.isnan(m["opp"]) and math.isnan(m["odds"])
    assert m["eacc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="binary"):
        fairness_metrics(torch.tensor([0, 2]), torch.tensor([0, 1]), torch.tensor([0, 1]))


def test_trigger_proportions_follow_eq2_exactly():
    # A=0: 80 with Y=1, 20 with Y=0; A=1: 10 with Y=1, 40 with Y=0
    y = torch.tensor([1] * 80 + [0] * 20 + [1] * 10 + [0] * 40)
    a = torch.tensor([0] * 100 + [1] * 50)
    assert cell_counts(y, a).tolist() == [[20, 80], [40, 10]]
    props = trigger_proportions(y, a)
    assert props[0, 1].item() == pytest.approx((80 - 20) / 80)
    assert props[1, 0].item() == pytest.approx((40 - 10) / 40)
    assert props[0, 0].item() == 0 and props[1, 1].item() == 0  # minority cells keep every sample
    assert trigger_proportions(y, a, alpha=2.0)[0, 1].item() == 1.0  # α scales, capped at 1
    chosen = select_for_trigger(y, a, alpha=1.0, seed=0)
    assert len(chosen) == 60 + 30
    assert bool(((a[chosen] == 0) & (y[chosen] == 1)).sum() == 60)
    # after pseudo-deletion every bias group is balanced in Y
    kept = torch.ones(150, dtype=torch.bool)
    kept[chosen] = False
    assert cell_counts(y[kept], a[kept]).tolist() == [[20, 20], [10, 10]]


# --- the embedded biased digits --------------------------------------------------------------

def test_biased_digits_correlate_a_with_y_in_train_only():
    from bdray.data.attributes import load_attribute_dataset

    ds = load_attribute_dataset("digits_biased", target="ge5", bias_strength=0.9)
    assert ds.image_shape == (3, 16, 16)
    tr, te = ds.train, ds.test
    assert tr.y.shape == (len(tr), 1) and ds.target_names == ("ge5",)
    for value in (0, 1):
        n = int((tr.y[:, 0] == value).sum())
        assert int(((tr.y[:, 0] == value) & (tr.a == value)).sum()) == round(0.9 * n)
        m = int((te.y[:, 0] == value).sum())
        assert abs(int(((te.y[:, 0] == value) & (te.a == 1)).sum()) - m / 2) <= 0.5  # test: A independent of Y
    # A is the stroke colour: orange strokes are red-heavy, azure ones blue-heavy
    red, blue = tr.images[:, 0].float().sum((1, 2)), tr.images[:, 2].float().sum((1, 2))
    assert bool(((red > blue) == (tr.a == 1)).all())
    assert load_attribute_dataset("digits_biased", target="even").train.y.float().mean() == pytest.approx(0.5, abs=0.05)


def test_biased_digits_reject_bad_arguments():
    from bdray.config import ConfigError
    from bdray.data.attributes import load_attribute_dataset

    with pytest.raises(ConfigError, match="target"):
        load_attribute_dataset("digits_biased", target="odd_shape")
    with pytest.raises(ConfigError, match="bias_strength"):
        load_attribute_dataset("digits_biased", bias_strength=1.5)
    with pytest.raises(ConfigError, match="dataset"):
        load_attribute_dataset("celebb")


# --- DBA's toy boundary study ------------------------------------------------------------------

def test_toy_data_and_strategies():
    from bdray.methods.fairness.dba_toy import DBAToyConfig, toy_points, training_set

    xy, y, upper = toy_points(0.8, 1000, 0.05, seed=0)
    assert len(y) == 2000 and int((y == 0).sum()) == 1000
    assert int(((y == 0) & (upper == 1)).sum()) == 800 and int(((y == 1) & (upper == 0)).sum()) == 800
    assert float(xy[y == 0, 0].mean()) < 0 < float(xy[y == 1, 0].mean())
    inputs, labels, surplus = training_set(DBAToyConfig(strategy="undersampling"))
    assert surplus == 1200 and len(labels) == 800  # every block keeps 200 points
    inputs, labels, _ = training_set(DBAToyConfig(strategy="pseudo_deletion"))
    assert len(labels) == 2000 and int(inputs[:, 2].sum()) == 1200  # surplus marked, not deleted
    assert int(training_set(DBAToyConfig(strategy="all"))[0][:, 2].sum()) == 0


def test_toy_run_reports_boundary_error_and_a_redrawable_grid():
    from bdray.methods.fairness.dba_toy import hex_to_bits
    from bdray.runtime import run_local

    result = run_local("dba_toy", {"strategy": "pseudo_deletion", "epochs": 100, "grid_size": 20}, device="cpu",
                       verbose=False)
    grid = hex_to_bits(result.history[-1]["boundary_grid"], 400)
    truth = torch.tensor([1 if x > 0 else 0 for _ in range(20) for x in torch.linspace(-1, 1, 20).tolist()])
    assert int((grid != truth).sum()) == result.metrics["boundary_error"]
    assert result.metrics["boundary_error"] < 400 * 0.25


def test_toy_pseudo_deletion_beats_undersampling_at_bias_08():
    """Fig. 5's claim at bias rate 0.8, averaged over 20 seeds (paired: same points per seed). Per
    seed the two strategies' errors spread widely (sd of the difference ~60 meshgrid points), so
    only the average is asserted; the margin over 20 seeds was ~29 points (~2 standard errors)."""
    import statistics

    from bdray.methods.fairness.dba_toy import DBAToyConfig, train_dba_toy
    from bdray.train.context import LocalContext

    torch.set_num_threads(2)
    errors = {s: [train_dba_toy(DBAToyConfig(bias_rate=0.8, strategy=s, seed=seed), LocalContext(verbose=False))
                  ["boundary_error"] for seed in range(20)] for s in ("undersampling", "pseudo_deletion")}
    means = {s: statistics.mean(v) for s, v in errors.items()}
    print(means)
    assert means["pseudo_deletion"] < means["undersampling"]


@pytest.mark.ray
def test_toy_sweep_smoke_rebuilds_fig5_and_boundaries_from_parquet(ray_local, tmp_path):
    from pathlib import Path

    from analysis.__main__ import main as analysis_main
    from analysis.load import load_trials
    from bdray.sweep import run_sweep
    from sweeps import dba_toy

    (sweep,) = dba_toy.build_sweeps(dba_toy.parse_args(["--smoke-test", "--storage-path", str(tmp_path)]))
    sweep.verbose = False
    run_sweep(sweep)
    trials = load_trials(sweep.root)
    assert sorted(trials["strategy"]) == ["all", "pseudo_deletion", "undersampling"]
    assert trials["boundary_error"].notna().all()
    analysis_main([sweep.root])
    report = Path(sweep.root) / "report"
    assert (report / "boundaries.png").stat().st_size > 0 and (report / "boundary_error.png").exists()
    assert "pseudo_deletion mean" in (report / "boundary_error.md").read_text()
