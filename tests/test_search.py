"""What a sweep's search does beyond one seed per configuration: seed replicas (Optuna told each
configuration's mean; tables with 95 % CIs; error bars), NSGA-II, and early stopping by ASHA.
The trials train the attack itself (``backdoor``: a small CNN on the digits, a second per epoch)."""
import optuna
import pytest
from ray import tune

from analysis.report import write_report
from analysis.seeds import config_means
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.sweep import Sweep, run_sweep
from bdray.sweep import storage as S

pytestmark = pytest.mark.ray

BASE = BackdoorConfig(epochs=2, batch_size=64)


def study_of(sweep):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep.journal_path())))
    return optuna.load_study(study_name=sweep.name, storage=storage)


def test_two_seeds_give_ci_columns_error_bars_and_optuna_sees_the_means(ray_local, tmp_path):
    sweep = Sweep(name="seeds", method="backdoor", base_config=BASE, search_space={"lr": tune.loguniform(0.01, 0.1)},
                  num_samples=2, seeds=2, sampler="nsga2", max_concurrent=2, storage_path=str(tmp_path),
                  verbose=False, executor="tune")
    run_sweep(sweep)
    trials = S.read_parquet(sweep.trials_path)
    assert len(trials) == 4 and (trials["status"] == "TERMINATED").all()
    per_config = trials.groupby("config_id")
    assert per_config.ngroups == 2 and (per_config["seed_index"].apply(sorted).map(tuple) == (0, 1)).all()
    assert (per_config["lr"].nunique() == 1).all()  # replicas share the configuration ...
    assert (per_config["seed"].nunique() == 2).all()  # ... not the seed (the attack's seed too)

    # NSGA-II ran a two-objective study with one Optuna trial per configuration, told the replicas' means
    study = study_of(sweep)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and all(len(t.values) == 2 for t in done)
    means = per_config[["lr", "acc", "asr"]].mean()
    for t in done:
        row = means.iloc[(means["lr"] - t.params["lr"]).abs().argmin()]
        assert t.values[0] == pytest.approx(row["acc"], abs=1e-6) and t.values[1] == pytest.approx(row["asr"], abs=1e-6)

    table = config_means(trials, ["acc", "asr"])
    assert len(table) == 2 and (table["seeds"] == 2).all() and table["acc_ci95"].notna().all()
    paths = write_report(sweep.root, params=["lr"])
    text = open(paths["seeds_md"]).read()
    assert "acc_ci95" in text and "asr_ci95" in text
    assert "tradeoff_png" in paths
    # compute: one CPU held per trial (executor tune), no GPU
    assert list(trials["cpu_hours"]) == pytest.approx(list(trials["wall_time_s"] / 3600)) and (trials["gpu_hours"] == 0).all()
    assert "CPU-hours" in open(paths["trials_md"]).read()


def test_asha_stops_hopeless_trials_early(ray_local, tmp_path):
    # one trial that learns, then two that cannot (lr 1e-5): ASHA's first rung (1 epoch, keep the top
    # third) stops the hopeless ones; one at a time, so the good trial has reached the rung first
    sweep = Sweep(name="asha", method="backdoor", base_config=BASE.replace(epochs=4),
                  search_space={"lr": tune.grid_search([0.05, 1e-5, 1e-5])}, search="grid", num_samples=1,
                  scheduler="asha", objectives=(("acc", "max"),), max_concurrent=1, storage_path=str(tmp_path),
                  verbose=False, executor="tune")
    result = run_sweep(sweep)
    trials = result.trials.set_index("lr")
    epochs = result.epochs.groupby("trial_id")["epoch"].max()
    good = trials.loc[0.05]
    assert not good["stopped_by_scheduler"] and epochs[good["trial_id"]] == 4
    hopeless = trials.loc[[1e-5]]
    assert hopeless["stopped_by_scheduler"].all() and (epochs[hopeless["trial_id"]] < 4).all()


def test_a_scheduler_needs_a_single_objective(tmp_path):
    from bdray.config import ConfigError

    sweep = Sweep(name="asha_bad", method="backdoor", base_config=BASE, search_space={}, scheduler="asha",
                  storage_path=str(tmp_path))
    with pytest.raises(ConfigError, match="scheduler.*single scalar objective"):
        sweep.validate()
