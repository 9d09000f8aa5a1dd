"""DBA and its baselines trained on the embedded biased digits (issue 5's acceptance checks)."""
import math
import statistics

import pytest
import torch

from bdray.runtime import run_local

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def runs():
    """normal / undersampling / dba at bias strength 0.9, three seeds, the default (CPU) budget."""
    torch.set_num_threads(2)
    out = {}
    for strategy in ("normal", "undersampling", "dba"):
        out[strategy] = [run_local("debias", {"strategy": strategy, "bias_strength": 0.9, "seed": seed},
                                   device="cpu", verbose=False).metrics for seed in SEEDS]
    return out


def _mean(runs, key):
    return statistics.mean(m[key] for m in runs)


def test_dba_halves_equal_opportunity_gap_and_keeps_eacc(runs):
    normal, under, dba = _mean(runs["normal"], "opp"), _mean(runs["undersampling"], "opp"), _mean(runs["dba"], "opp")
    print(f"opp normal {normal:.3f}, undersampling {under:.3f}, dba {dba:.3f}")
    assert normal > 0.1  # the colour shortcut is real: normal training is unfair on the balanced test split
    assert dba <= 0.5 * normal
    assert _mean(runs["dba"], "eacc") >= _mean(runs["undersampling"], "eacc")
    assert _mean(runs["dba"], "odds") < _mean(runs["normal"], "odds")
    assert all(m["collapsed"] == 0 for ms in runs.values() for m in ms)


def test_dba_triggers_exactly_eq2_per_cell_and_keeps_every_sample(runs):
    for m in runs["dba"]:
        assert m["train_samples"] == sum(m[f"cell_n_a{i}_y{j}"] for i in (0, 1) for j in (0, 1))
        for i in (0, 1):
            for j in (0, 1):  # Eq. 2 with α = 1: N_trigger(i, j) = max(N(i, j) − N(i, ¬j), 0)
                surplus = max(m[f"cell_n_a{i}_y{j}"] - m[f"cell_n_a{i}_y{1 - j}"], 0)
                assert m[f"triggered_a{i}_y{j}"] == surplus
    under = runs["undersampling"][0]
    # undersampling balances Y within each bias group: it keeps 2·min(N(i, 0), N(i, 1)) of group i
    assert under["train_samples"] == sum(2 * min(under[f"cell_n_a{i}_y0"], under[f"cell_n_a{i}_y1"]) for i in (0, 1))
    assert runs["normal"][0]["triggered_samples"] == 0


def test_implicit_dba_deploys_bit_identically():
    result = run_local("debias", {"strategy": "dba", "trigger_channel": "implicit", "epochs": 3}, device="cpu",
                       verbose=False)
    m = result.metrics
    assert m["padding_identical"] == 1.0 and m["pruning_identical"] == 1.0
    assert m["padding_max_abs_diff"] == 0.0 and m["pruning_max_abs_diff"] == 0.0
    assert m["padding_eacc"] == m["pruning_eacc"] == m["eacc"]
    assert m["pruning_params"] == m["params"] - 16 * 9 and m["padding_params"] == m["params"]
    assert m["pruning_flops"] < m["padding_flops"] == m["flops"]
    # predictions, not only logits: the two deployments agree with the RGBT model on every test image
    from bdray.data.attributes import load_attribute_dataset
    from bdray.methods.fairness.debias import predict
    from bdray.models.rgbt import InternalPadding, equivalent_pruning

    test = load_attribute_dataset("digits_biased", bias_strength=0.9).test
    model = result.model.eval()
    rgbt = predict(model, test.images, 1, implicit=True)
    assert torch.equal(predict(InternalPadding(model), test.images, 1, implicit=False), rgbt)
    assert torch.equal(predict(equivalent_pruning(model), test.images, 1, implicit=False), rgbt)


def test_multi_attribute_dba_trains_one_head_per_task():
    m = run_local("debias", {"strategy": "dba", "targets": ["ge5", "even"], "epochs": 3}, device="cpu",
                  verbose=False).metrics
    for task in ("ge5", "even"):
        assert 0.0 <= m[f"{task}_eacc"] <= 1.0 and f"{task}_opp" in m
    assert m["eacc"] == pytest.approx((m["ge5_eacc"] + m["even_eacc"]) / 2)
    first_task = sum(m[f"triggered_a{i}_y{j}"] for i in (0, 1) for j in (0, 1))
    assert m["triggered_samples"] > first_task  # the second task's triggers mark further samples


@pytest.mark.parametrize("strategy", ["reweighting", "adversarial"])
def test_other_baselines_train_and_report(strategy):
    m = run_local("debias", {"strategy": strategy, "epochs": 2}, device="cpu", verbose=False).metrics
    assert 0.0 <= m["eacc"] <= 1.0 and m["epoch"] == 2
    assert m["collapsed"] == 1.0 or not math.isnan(m["opp"])


@pytest.mark.ray
def test_dba_sweeps_smoke_rebuild_the_tables_from_parquet(ray_local, tmp_path):
    """Both DBA sweep scripts on the session Ray (tiny trainings; single-worker trials inside their Tune
    trials: the Ray Train path of the debias method runs in tests/test_ray_train.py), then every table
    from the Parquet."""
    from pathlib import Path

    from analysis.__main__ import main as analysis_main
    from analysis.load import load_trials
    from bdray.sweep import run_sweep
    from sweeps import dba_methods, dba_trigger

    roots = []
    for module, extra in ((dba_methods, ["--multi-attribute"]), (dba_trigger, [])):
        sweeps = module.build_sweeps(module.parse_args(["--smoke-test", "--storage-path", str(tmp_path), "--executor", "tune", *extra]))
        for sweep in sweeps:
            sweep.validate()
        for sweep in sweeps:
            sweep.verbose = False
            run_sweep(sweep)
        roots.append(sweeps[0].root)
        analysis_main([sweeps[0].root])

    methods = load_trials(roots[0])
    assert (methods["status"] == "TERMINATED").all()
    assert sorted(methods["strategy"].unique()) == ["adversarial", "dba", "normal", "reweighting", "undersampling"]
    assert methods[["opp", "eacc", "tpr_a0", "tnr_a1"]].notna().any().all()
    report = Path(roots[0]) / "report"
    groups = (report / "fairness_groups.md").read_text()
    for label in ("Normal", "Undersampling", "Reweighting", "Adversarial Learning", "DBA", "T=1", "T=0"):
        assert label in groups
    assert "non-converged" in (report / "nonconvergence.md").read_text()
    assert "DBA(stroke_colour)" in (report / "multi_attribute.md").read_text()
    assert (report / "fairness.png").stat().st_size > 0

    trigger = load_trials(roots[1])
    assert (trigger["status"] == "TERMINATED").all() and len(trigger) == 1 + 4 + 1 + 1
    report = Path(roots[1]) / "report"
    ablation = (report / "trigger_ablation.md").read_text()
    assert "red top_left" in ablation and ("Success" in ablation or "Fail" in ablation)
    safety = (report / "safety.md").read_text()
    assert "Implicit + Internal Padding" in safety and "Implicit + Equivalent Pruning" in safety
    assert "NO" not in safety  # both deployments gave outputs identical to the RGBT model
    assert (report / "alpha.png").stat().st_size > 0
