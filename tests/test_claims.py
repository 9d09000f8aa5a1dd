"""The paper-claims harness: every claim is evaluated at smoke size on the embedded digits (the
plumbing: runs, reuse of finished runs, verdicts, Markdown + JSON), the verdict rules on hand-made
numbers, and a reduced check on the real CIFAR-10 subset when ../shared/data has it."""
import json
from pathlib import Path

import pytest

from bdray.claims import CLAIMS, judge, plan, run_claims, verdict
from bdray.claims.__main__ import main
from bdray.config import ConfigError
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.presets import backdoor_preset, family_of

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_partial.npz"


def test_verdicts_over_seeds():
    assert verdict([True, True, True]) == "holds"
    assert verdict([True, False, True]) == "weak"
    assert verdict([False, False, True]) == "fails"
    assert verdict([None]) == "not run"


def _seed(clean_asr=0.0, **dhbe):
    base = {"acc": 0.98, "asr": clean_asr, "asr_x4": 0.0, "asr_x9": 0.0, "collapsed": 0.0}
    return {"clean": base, "backdoor": {**base, "acc": 0.975, "asr": 1.0, "asr_x4": 1.0, "asr_x9": 1.0},
            "dhbe": {**base, "acc": 0.97, "asr": 0.01, **dhbe}}


def test_a_collapsed_model_fails_however_low_its_asr():
    rows = {r["claim"]: r for r in judge({0: _seed(), 1: _seed(collapsed=1.0, acc=0.1, asr=0.0)})}
    assert rows["dhbe"]["verdict"] == "weak" and rows["dhbe"]["seeds_held"] == "1/2"
    assert rows["dhbe"]["measured"]["dhbe.asr"]["values"] == [0.01, 0.0]


def test_amplified_triggers_are_judged_against_the_clean_model():
    seed = _seed(asr_x9=0.45)
    assert {r["claim"]: r for r in judge({0: seed})}["dhbe"]["verdict"] == "fails"
    seed["clean"]["asr_x9"] = 0.43  # nine patches fool the clean model too (32×32 colour images)
    assert {r["claim"]: r for r in judge({0: seed})}["dhbe"]["verdict"] == "holds"


def test_plan_names_every_run_and_rejects_unknown_methods():
    runs = plan(BackdoorConfig(), [0, 1], "cpu")
    labels = {lab for _, (lab, _, _) in runs}
    assert {"clean", "backdoor", "dhbe", "dfad", "abl", "pt", "cbd", "cbd@clean", "dba", "dba_normal"} <= labels
    fairness_only = plan(BackdoorConfig(), [0], "cpu", methods=["dba"])
    assert [(lab, cfg.strategy) for _, (lab, _, cfg) in fairness_only] == [
        ("dba_normal", "normal"), ("dba_undersampling", "undersampling"), ("dba", "dba")]
    assert all(cfg.seed == seed for seed, (_, _, cfg) in runs)
    clean = [cfg for _, (lab, _, cfg) in runs if lab == "clean"][0]
    assert clean.backdoor.poison_rate == 0.0
    with pytest.raises(ConfigError, match="methods"):
        plan(BackdoorConfig(), [0], "cpu", methods=["magic"])
    with pytest.raises(ConfigError, match="budget"):
        plan(BackdoorConfig(), [0], "huge")


def test_presets_are_chosen_by_image_shape():
    assert family_of((1, 16, 16)) == "digits16"
    assert family_of((1, 28, 28)) == "grey28"
    assert family_of((3, 32, 32)) == "colour32"
    assert family_of((3, 64, 64)) == "faces64"
    assert backdoor_preset((3, 32, 32), "paper")[1]["model"] == "resnet18"


@pytest.mark.slow
def test_smoke_harness_evaluates_every_claim_and_reuses_finished_runs(tmp_path, capsys):
    out = tmp_path / "claims"
    assert main(["--budget", "smoke", "--seeds", "1", "--out", str(out)]) == 0
    doc = json.loads((out / "claims.json").read_text())
    assert [r["claim"] for r in doc["claims"]] == [c.name for c in CLAIMS]
    assert all(r["verdict"] in ("holds", "weak", "fails") for r in doc["claims"])  # every claim evaluated
    assert set(doc["runs"]["0"]) >= {"clean", "backdoor", "dhbe", "nad_5pct", "abl@clean", "dba", "dba_undersampling"}
    assert "opp" in doc["runs"]["0"]["dba"]
    assert "| claim | verdict |" in (out / "claims.md").read_text()
    printed = capsys.readouterr().out
    assert "preset 'digits16'" in printed
    # a second call with the same folder reuses every finished run
    doc2 = run_claims(BackdoorConfig(), [0], "smoke", str(out), log=lambda *_: None)
    assert doc2["runs"][0] == {k: v for k, v in doc["runs"]["0"].items()}
    # ... unless its config has changed since (new defaults): that run is done again
    kept = out / "runs" / "seed0_clean.json"
    kept.write_text(json.dumps({**json.loads(kept.read_text()), "config_digest": "an older config"}))
    lines = []
    doc3 = run_claims(BackdoorConfig(), [0], "smoke", str(out), log=lines.append)
    assert "1 rerun because their config changed" in lines[0]
    assert json.loads(kept.read_text())["config_digest"] == doc3["runs"][0]["clean"]["config_digest"] != "an older config"


@pytest.mark.slow
def test_reduced_harness_on_the_real_cifar10_subset(tmp_path):
    if not CIFAR.exists():
        pytest.skip(f"{CIFAR} is not here (../shared/data is only on the project's machines)")
    out = tmp_path / "cifar"
    assert main(["--dataset", "npz", "--data-root", str(CIFAR), "--budget", "smoke", "--seeds", "1",
                 "--methods", "cbd", "--no-clean-cost", "--out", str(out)]) == 0
    doc = json.loads((out / "claims.json").read_text())
    runs = doc["runs"]["0"]
    assert set(runs) == {"clean", "backdoor", "cbd"}
    assert runs["backdoor"]["asr"] > runs["clean"]["asr"]  # even 3 epochs implant the patch on real images
    assert doc["settings"]["dataset"] == "npz"


def test_sweeps_pick_the_preset_by_image_shape_and_name_the_file(tmp_path, capsys):
    import numpy as np

    from sweeps import dhbe_lr

    path = tmp_path / "my data.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8), y=np.arange(40) % 4)
    (own,) = dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--dataset", "npz", "--data-root", str(path)]))
    assert "preset 'colour32'" in capsys.readouterr().out  # printed before anything trains
    assert own.base_config.backdoor.model == "small_cnn" and own.base_config.backdoor.epochs == 20
    assert own.base_config.epochs == 12  # DHBE's CPU budget, not the paper's 300 epochs
    # the 32×32 images keep the paper's 5×5 trigger generator; the 16×16 digits get the 3×3 one
    assert (own.base_config.trigger_gen_size, own.base_config.lambda_abr) == (5, 0.5)
    (digits,) = dhbe_lr.build_sweeps(dhbe_lr.parse_args([]))
    assert (digits.base_config.trigger_gen_size, digits.base_config.lambda_abr) == (3, 1.0)
    assert own.name.startswith("dhbe_lr_npz_my_data_") and len(own.name) == len("dhbe_lr_npz_my_data_") + 6
    (paper,) = dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--dataset", "npz", "--data-root", str(path),
                                                        "--budget", "paper", "--smoke-test"]))
    assert paper.base_config.backdoor.model == "resnet18" and paper.name.endswith("_smoke")
    (cifar,) = dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--dataset", "cifar10"]))
    assert cifar.base_config.epochs == 300 and cifar.name == "dhbe_lr_cifar10"


def test_method_presets_follow_the_image_shape(tmp_path):
    import numpy as np

    from bdray.presets import describe, method_preset

    path = tmp_path / "colour.npz"
    np.savez(path, x=np.zeros((20, 32, 32, 3), np.uint8), y=np.arange(20) % 2)
    assert method_preset("pt", "npz", str(path)) == {"partial_epochs": 10}
    assert method_preset("pt", "digits") == {} and method_preset("pt", "npz", str(path), "paper") == {}
    pt = [cfg for _, (lab, _, cfg) in plan(BackdoorConfig(dataset="npz", data_root=str(path)), [0], "cpu",
                                           methods=["pt"]) if lab == "pt"]
    assert pt[0].partial_epochs == 10
    assert "pt: partial_epochs=10" in describe("colour32", {}, "cpu") and "pt" not in describe("colour32", {}, "paper")


def test_paper_budgets_take_the_papers_clean_share_and_epoch(tmp_path):
    import numpy as np

    from bdray.presets import describe, method_preset

    path = tmp_path / "colour.npz"
    np.savez(path, x=np.zeros((20, 32, 32, 3), np.uint8), y=np.arange(20) % 2)
    colour = BackdoorConfig(dataset="npz", data_root=str(path))
    runs = {lab: cfg for _, (lab, _, cfg) in plan(colour, [0], "paper-cpu", methods=["nad_5pct", "finetune", "anp"])}
    # the papers' clean counts, not the labels' (finetune's label says 4 %), and DHBE's 2,000-sample epoch
    assert runs["finetune"].clean_fraction == 0.05 and runs["finetune"].samples_per_epoch == 2000
    assert runs["nad_5pct"].samples_per_epoch == 2000 and runs["anp"].clean_fraction == 0.01
    cpu = {lab: cfg for _, (lab, _, cfg) in plan(colour, [0], "cpu", methods=["finetune"])}
    assert cpu["finetune"].samples_per_epoch == 500 and cpu["finetune"].clean_fraction == 0.04
    assert method_preset("nad", "npz", str(path), "paper")["samples_per_epoch"] == 2000
    assert "nad: clean_fraction=0.05, samples_per_epoch=2000" in describe("colour32", {}, "paper-cpu")


def test_seed_list_runs_exactly_the_seeds_named(monkeypatch, capsys):
    import bdray.claims as claims

    class Called(Exception):
        pass

    def fake_run_claims(backdoor, seeds, *args, **kwargs):
        raise Called(seeds)

    monkeypatch.setattr(claims, "run_claims", fake_run_claims)
    with pytest.raises(Called) as called:
        main(["--budget", "smoke", "--seed-list", "1", "3"])
    assert called.value.args[0] == [1, 3]
    with pytest.raises(Called) as called:
        main(["--budget", "smoke", "--seeds", "2"])
    assert called.value.args[0] == [0, 1]
    assert main(["--budget", "smoke", "--seed-list", "-1"]) == 2
    assert "--seed-list" in capsys.readouterr().err
