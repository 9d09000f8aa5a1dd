"""Smoke runs of the training-time defense sweeps on the shared local Ray (trials run inside the
Tune trials, ``--executor tune``, to keep CI short), then the analysis rebuilds the robustness,
comparison, isolation and Pareto outputs from the Parquet alone."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import defenses
from analysis.__main__ import main as analysis_main
from analysis.load import load_trials
from bdray.sweep import run_sweep
from sweeps import abl_isolation, benchmark, cbd_poison_rate, defense_comparison, detection, pt_isolation

pytestmark = pytest.mark.ray


def run_script(module, root, *argv):
    args = module.parse_args([*argv, "--smoke-test", "--storage-path", str(root), "--executor", "tune"])
    sweeps = module.build_sweeps(args)
    for sweep in sweeps:
        sweep.verbose = False
        run_sweep(sweep)
    return [s.root for s in sweeps]


@pytest.fixture(scope="module")
def smoke_root(ray_local, tmp_path_factory):
    return tmp_path_factory.mktemp("defense_sweeps")


def test_robustness_smoke_fills_every_rate_and_attack_cell(smoke_root):
    # two rates × two attacks keep it CI-sized (each cell is an attack artifact plus two trials)
    roots = run_script(cbd_poison_rate, smoke_root, "--lambda-sweep", "--rates", "0.01", "0.2",
                       "--attacks", "badnets", "blend")
    trials = load_trials(roots[0])
    assert len(trials) == 8 and set(trials["status"]) == {"TERMINATED"}
    table = defenses.robustness_table(trials)
    assert table["poisoning rate"].tolist() == ["1%", "1%", "20%", "20%"]
    assert table["defense"].tolist() == ["None", "CBD"] * 2
    assert [c for c in table.columns if c.endswith("ASR")] == ["BadNets ASR", "Blend ASR"]
    assert not table.isna().any().any()
    cbd = trials[trials["method"] == "cbd"]
    assert cbd[["mean_weight_poisoned", "mean_weight_clean", "fb_asr"]].notna().all().all()
    analysis_main([roots[0]])
    report = Path(roots[0]) / "report"
    for name in ("robustness.md", "robustness.png", "pareto.png", "pareto.md"):
        assert (report / name).stat().st_size > 0
    assert "Blend CA" in (report / "robustness.md").read_text()
    comparison = defenses.comparison_table(trials)
    assert comparison["attack"].tolist() == ["BadNets", "Blend"]
    assert list(comparison.columns[2:]) == ["Baseline ACC/ASR", "CBD ACC/ASR"]
    # the λ sweep of the MI term
    lam = load_trials(roots[2])
    assert sorted(lam["mi_weight"]) == [0.001, 0.01] and lam["mutual_information"].all()
    assert lam["mi_estimate"].notna().all()
    analysis_main([roots[2]])
    assert (Path(roots[2]) / "report" / "mi_weight_sensitivity.png").exists()


def test_isolation_sweeps_report_precision_recall_and_pareto_front(smoke_root):
    (abl_root,) = run_script(abl_isolation, smoke_root)
    (pt_root,) = run_script(pt_isolation, smoke_root)
    abl, pt = load_trials(abl_root), load_trials(pt_root)
    assert len(abl) == 2 and len(pt) == 2
    for df, cols in ((abl, ["isolation_precision", "isolation_recall", "gamma", "isolation_ratio"]),
                     (pt, ["isolation_precision", "base_isolation_precision", "freeze_fraction", "isolated_lr"])):
        assert df[cols].notna().all().all()
        assert ((df["isolation_precision"] >= 0) & (df["isolation_precision"] <= 1)).all()
    # ABL reports DER against the model the same poisoned data gives undefended (one shared, prebuilt
    # artifact: no trial trained it), on the test and on the validation split the search chose on
    assert abl[["der", "val_der", "undefended_acc", "val_acc"]].notna().all().all()
    assert (abl["artifacts_trained"] == 0).all() and (abl["selected_on"] == "validation").all()
    assert abl["der"].tolist() == pytest.approx([
        (max(0, r.undefended_asr - r.asr) - max(0, r.undefended_acc - r.acc) + 1) / 2 for r in abl.itertuples()])
    # both studies are multi-objective Optuna studies, kept next to the results
    assert (Path(abl_root) / "optuna.journal").exists()
    analysis_main([pt_root])
    report = Path(pt_root) / "report"
    assert (report / "isolation.png").exists() and (report / "pareto.png").exists()
    text = (report / "isolation.md").read_text()
    assert "PT M′" in text and "PT M_s" in text


def test_defense_comparison_builds_every_defense_against_every_attack(tmp_path):
    """The script's grid (its runtime path is the one the robustness and isolation smokes run);
    the PT-Table-2 table itself is checked on the robustness smoke's trials above and below."""
    args = defense_comparison.parse_args(["--smoke-test", "--storage-path", str(tmp_path), "--attacks", "badnets",
                                          "blend", "sig", "wanet", "clean"])
    sweeps = defense_comparison.build_sweeps(args)
    assert [s.method for s in sweeps] == ["no_defense", "abl", "pt", "cbd"]
    for sweep in sweeps:
        sweep.validate()
        assert sweep.search_space["variant"] == {"grid_search": [
            {"backdoor.attack": "badnets"}, {"backdoor.attack": "blend"}, {"backdoor.attack": "sig"},
            {"backdoor.attack": "wanet"}, {"backdoor.attack": "badnets", "backdoor.poison_rate": 0.0}]}
        assert sweep.base_config.backdoor.poison_rate == 0.08  # SIG can poison at most the target class
    assert not any(tmp_path.iterdir())  # nothing ran


def test_benchmark_sweep_puts_old_and_new_methods_in_one_defense_attack_table(smoke_root):
    """One sweep folder, the "None" row and issue 18's data-free CLP against an old (BadNets) and a new
    (BppAttack) attack; ``python -m analysis`` builds the defense × attack table from its Parquet.
    Two cheap defenses keep it CI-sized: every defense is its own Tune run of the same code path
    (fine-tuning's, FST's, ABL's are the other smokes'); the full grid is the script without flags."""
    roots = run_script(benchmark, smoke_root, "--attacks", "badnets", "bpp", "--defenses", "no_defense", "clp")
    assert len(set(roots)) == 1  # every defense's trials land in the same sweep folder
    trials = load_trials(roots[0])
    assert sorted(zip(trials["method"], trials["attack"])) == [("clp", "badnets"), ("clp", "bpp"),
                                                              ("no_defense", "badnets"), ("no_defense", "bpp")]
    assert (trials["status"] == "TERMINATED").all() and (trials["artifacts_trained"] == 0).all()
    analysis_main([roots[0]])
    text = (Path(roots[0]) / "report" / "comparison.md").read_text()
    for label in ("BadNets", "BppAttack", "Baseline ACC/ASR", "clp ACC/ASR"):
        assert label in text
    table = defenses.comparison_table(trials)
    assert table["attack"].tolist() == ["BadNets", "BppAttack"]
    assert table.drop(columns=["attack", "dataset"]).map(bool).all().all()  # every cell filled


def test_pareto_mask_keeps_exactly_the_non_dominated_trials():
    acc = [0.9, 0.95, 0.8, 0.95, 0.7]
    asr = [0.1, 0.3, 0.05, 0.5, 0.05]
    assert defenses.pareto_mask(acc, asr).tolist() == [True, True, True, False, False]


def test_tables_from_a_hand_made_trials_table():
    rows = []
    for rate in (0.01, 0.5):
        for method in ("no_defense", "cbd"):
            for attack in ("badnets", "wanet"):
                rows.append({"backdoor_poison_rate": rate, "method": method, "attack": attack, "dataset": "digits",
                             "acc": 0.9 if method == "cbd" else 0.8, "asr": 0.02 if method == "cbd" else 1.0})
    df = pd.DataFrame(rows)
    table = defenses.robustness_table(df)
    assert table.shape == (4, 6)
    assert table.loc[1, "BadNets ASR"] == pytest.approx(2.0) and table.loc[0, "WaNet CA"] == pytest.approx(80.0)
    assert defenses.comparison_table(df).loc[0, "CBD ACC/ASR"] == "0.900/0.020"
    # a defended model that sends most clean images to one class: its ASR of 0 is no defense, and the cell says so
    skewed = df.assign(pred_majority_share=np.where(df["method"] == "cbd", 0.62, 0.11))
    table = defenses.comparison_table(skewed)
    assert table.loc[0, "CBD ACC/ASR"] == "0.900/0.020 (one class: 62%)"
    assert table.loc[0, "Baseline ACC/ASR"] == "0.800/1.000"
    iso = pd.DataFrame({"method": ["pt", "pt"], "isolation_ratio": [0.05, 0.1], "isolation_precision": [1.0, 0.9],
                        "isolation_recall": [0.5, 0.9], "base_isolation_precision": [0.4, 0.3],
                        "base_isolation_recall": [0.2, 0.3]})
    t = defenses.isolation_table(iso)
    assert t["isolated by"].tolist() == ["PT M′", "PT M′", "PT M_s", "PT M_s"]
    assert np.allclose(t["precision"], [1.0, 0.9, 0.4, 0.3]) and not math.isnan(t["recall"].sum())


def test_detection_smoke_builds_the_detectors_table(smoke_root):
    from analysis.detection import detection_table

    # one detector keeps it CI-sized (each detector is its own Tune run; the others share the code path)
    (root,) = run_script(detection, smoke_root, "--poison-rates", "0.05", "--detectors", "strip")
    trials = load_trials(root)
    assert trials["method"].tolist() == ["strip"] and (trials["status"] == "TERMINATED").all()
    assert (trials["artifacts_reused"] == 1).all()
    assert trials[["detection_tpr", "detection_fpr", "detection_auroc", "strip_test_tpr"]].notna().all().all()
    table = detection_table(trials)
    assert table[["attack", "poison rate"]].values.tolist() == [["badnets", "0.05"]]
    assert {"strip TPR", "strip FPR", "strip AUROC", "strip test TPR", "strip test FPR"} <= set(table.columns)
    analysis_main([root])
    assert "strip test FPR" in (Path(root) / "report" / "detection.md").read_text()
