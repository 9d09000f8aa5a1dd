"""Smoke runs of every paper sweep script on the shared local Ray, then the analysis command
rebuilds every plot and table from the Parquet alone."""
import math
from pathlib import Path

import pytest

from analysis import fit_logistic, load_trials
from analysis import defenses, paper
from analysis.__main__ import main as analysis_main
from bdray.sweep import run_sweep
from sweeps import attack_defense, dhbe_lambda, dhbe_lr, dhbe_trigger_size

pytestmark = pytest.mark.ray


def run_script(module, root, *argv):
    # single-worker trials inside their Tune trials: the Ray Train path of the same scripts runs in
    # tests/test_autoscaling.py (a Train-executor sweep on autoscaled nodes) and tests/test_ray_train.py; here it
    # would add ~15 s of start-up per trial
    args = module.parse_args([*argv, "--smoke-test", "--storage-path", str(root), "--executor", "tune"])
    sweeps = module.build_sweeps(args)
    for sweep in sweeps:
        sweep.verbose = False
        run_sweep(sweep)
    return sweeps[0].root


@pytest.fixture(scope="module")
def smoke_dirs(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    return {
        "compare": run_script(dhbe_lr, root, "--compare", "--baselines", "finetune", "--compare-lrs", "4",
                              "--compare-lr-max", "0.3"),
        "lambda": run_script(dhbe_lambda, root),
        "trigger_size": run_script(dhbe_trigger_size, root),
        # CLP (data-free, no training) beside fine-tuning: DHBE's trials are the three sweeps above
        "attack_defense": run_script(attack_defense, root, "--defenses", "finetune", "clp", "--attacks", "badnets",
                                     "clean_label", "trojan", "clean"),
    }


def test_compare_sweep_has_every_method_and_finite_fits(smoke_dirs):
    trials = load_trials(smoke_dirs["compare"])
    assert set(trials["method"]) == {"dhbe", "finetune"}
    assert (trials["status"] == "TERMINATED").all()
    assert len(trials[trials["method"] == "finetune"]) == 4 and trials.loc[trials.method == "finetune", "lr"].nunique() == 4
    analysis_main([smoke_dirs["compare"], "--param", "student_lr"])
    report = trials.assign(curve=paper.curve_labels(trials))
    assert "finetune (4% clean)" in set(report["curve"]) and "dhbe (no data)" in set(report["curve"])
    fits = {name: fit_logistic(part["asr"], part["acc"]) for name, part in report.groupby("curve")}
    print("\nsmoke trade-off fits:", fits)
    assert fits["finetune (4% clean)"] is not None  # lr up to 0.3 spans ASR from ~1 to ~0
    for fit in fits.values():
        if fit is not None:
            assert all(math.isfinite(v) for v in (fit.low, fit.high, fit.k, fit.mid, fit.rmse))
    folder = smoke_dirs["compare"]
    for name in ("tradeoff.png", "trials.md", "lr_sensitivity.png", "lr_sensitivity.md"):
        assert (Path(folder) / "report" / name).exists()


def test_attack_defense_tables_have_the_papers_shape(smoke_dirs):
    everything = load_trials(smoke_dirs["attack_defense"])
    assert set(everything["attack"]) == {"badnets", "trojan", "clean"}
    # the clean model (nothing poisoned) is one more "attack": each defense's accuracy cost there
    cost = defenses.clean_cost_table(everything).set_index("defense")
    assert set(cost.index) == {"finetune", "clp"} and (cost["against"] == "the model it started from").all()
    clean = everything[everything["attack"] == "clean"].set_index("method")
    assert (clean["backdoor_poison_rate"] == 0).all() and (clean["teacher_asr"] < 0.2).all()
    assert cost.loc["clp", "ACC cost"] == pytest.approx(100 * (clean.loc["clp", "teacher_acc"] - clean.loc["clp", "acc"]))
    trials = everything[everything["attack"] != "clean"]
    assert set(trials["method"]) == {"finetune", "clp"}
    table3 = paper.attack_defense_table(trials)
    assert list(table3["attack"]) == ["badnets 3×3", "trojan 3×3", "Mean"]
    assert list(table3.columns) == ["attack", "backdoored ACC", "backdoored ASR", "finetune ACC", "finetune ASR",
                                    "clp ACC", "clp ASR"]
    table6 = paper.amplified_table(trials)
    assert list(table6["trigger"]) == ["badnets 3×3", "trojan 3×3", "Mean ASR"]
    assert list(table6.columns) == ["trigger", "finetune x1", "finetune x4", "finetune x9", "clp x1", "clp x4",
                                    "clp x9"]
    assert table3.drop(columns="attack").notna().all().all()
    analysis_main([smoke_dirs["attack_defense"]])
    from pathlib import Path

    text = (Path(smoke_dirs["attack_defense"]) / "report" / "attack_defense.md").read_text()
    assert "| Mean |" in text and "clp ASR" in text
    assert (Path(smoke_dirs["attack_defense"]) / "report" / "amplified.md").exists()
    assert "ACC cost" in (Path(smoke_dirs["attack_defense"]) / "report" / "clean_cost.md").read_text()


def test_sensitivity_and_trigger_size_reports(smoke_dirs):
    from pathlib import Path

    analysis_main([smoke_dirs["lambda"]])
    lam = Path(smoke_dirs["lambda"]) / "report"
    assert (lam / "lambda_sensitivity.png").exists()
    assert paper.sensitivity_table(load_trials(smoke_dirs["lambda"]), "lambda_abr")["lambda_abr"].tolist() == [0.0, 0.1]
    analysis_main([smoke_dirs["trigger_size"]])
    grids = paper.trigger_size_grid(load_trials(smoke_dirs["trigger_size"]))
    assert grids["asr"].shape == (2, 1) and grids["acc"].notna().all().all()
    assert "trigger-generator size" in (Path(smoke_dirs["trigger_size"]) / "report" / "trigger_size.md").read_text()


def test_report_page_renders_in_a_headless_browser(smoke_dirs):
    # the page of the attack × defense sweep: many tables, two figures, clean-model rows
    import os

    from analysis.report import write_report
    from tests.headless import chromium, inspect_page

    if chromium() is None:
        if os.environ.get("BDRAY_REQUIRE_CHROMIUM"):
            pytest.fail("BDRAY_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    paths = write_report(smoke_dirs["attack_defense"])
    page = Path(paths["index_html"])
    seen = inspect_page(page)
    assert seen["loaded"] and seen["title"] == f"bdray sweep {Path(smoke_dirs['attack_defense']).name}"
    figures = sorted(Path(p).stem for p in paths.values() if p.endswith(".png"))
    assert len(figures) >= 2 and sorted(image["alt"] for image in seen["images"]) == figures
    assert all(image["complete"] and image["width"] > 100 and image["height"] > 100 for image in seen["images"])
    assert seen["failed_requests"] == [] and seen["errors"] == []
    text = page.read_text()
    assert "src=\"data:image/png;base64," in text and "src=\"report/" not in text  # self-contained
    for stem in ("trials", "attack_defense", "amplified", "clean_cost"):  # every table of the folder
        assert f"<code>{stem}.md</code>" in text
    assert "chosen on" in text and "validation split" in text and "CPU-hours" in text
