"""A real Ray Tune + Optuna sweep of DHBE trials on the shared local Ray, run inside their Tune trials
(Ray Train trials: tests/test_autoscaling.py's preempted sweep on autoscaled nodes, tests/test_ray_train.py;
the README command submitted as a Ray job: tests/test_autoscaling.py)."""
import json

import pytest
from ray import tune

from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.dhbe import DHBEConfig
from bdray.sweep import Sweep, run_sweep
from bdray.sweep import storage as S

pytestmark = pytest.mark.ray

TINY = DHBEConfig(backdoor=BackdoorConfig(epochs=3, batch_size=64), epochs=2, iters_per_epoch=2, batch_size=32,
                  generator_width=16)


def make_sweep(root, num_samples, executor="tune"):
    return Sweep(name="dhbe_lr_test", method="dhbe", base_config=TINY,
                 search_space={"student_lr": tune.loguniform(0.01, 0.2)}, num_samples=num_samples,
                 max_concurrent=2, storage_path=str(root), seed=0, verbose=False, executor=executor)


def test_sweep_writes_parquet_and_rerun_adds_trials(ray_local, tmp_path):
    # two trials run at once
    sweep = make_sweep(tmp_path, 2)
    result = run_sweep(sweep)
    trials = S.read_parquet(sweep.trials_path)
    epochs = S.read_parquet(sweep.epochs_path)
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    expected = {"sweep", "trial_id", "method", "dataset", "model", "attack", "seed", "student_lr", "lambda_abr",
                "backdoor_poison_rate", "backdoor_attack_trigger_size", "acc", "asr", "asr_cond", "ra", "asr_x4",
                "asr_x9", "status", "wall_time_s", "hardware", "bdray_version", "git_commit"}
    assert expected <= set(trials.columns)
    assert trials["student_lr"].nunique() == 2 and trials["student_lr"].between(0.01, 0.2).all()
    assert (trials["method"] == "dhbe").all() and (trials["dataset"] == "digits").all()
    assert len(epochs) == 2 * TINY.epochs and set(epochs["trial_id"]) == set(trials["trial_id"])
    assert result.trials["trial_id"].is_unique

    # the attack artifact was trained once, next to the results, and reused by all trials
    artifacts = list((tmp_path / "artifacts" / "backdoor").glob("*/meta.json"))
    assert len(artifacts) == 1 and json.loads(artifacts[0].read_text())["metrics"]["acc"] > 0.5

    # the same study name continues the study: trials are added, nothing restarts
    again = run_sweep(make_sweep(tmp_path, 2))
    trials = S.read_parquet(sweep.trials_path)
    assert len(again.trials) == 2 and len(trials) == 4 and trials["trial_id"].is_unique
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep.journal_path())))
    study = optuna.load_study(study_name=sweep.name, storage=storage)
    assert len([t for t in study.trials if t.state.is_finished()]) == 4


def test_bad_search_space_fails_before_ray_starts(tmp_path):
    from bdray.config import ConfigError

    bad = Sweep(name="bad", method="dhbe", base_config=TINY,
                search_space={"backdoor.poison_rate": tune.uniform(0.5, 1.5)}, storage_path=str(tmp_path))
    with pytest.raises(ConfigError):
        bad.validate()
    with pytest.raises(ConfigError, match="lower bound"):
        Sweep(name="bad", method="dhbe", base_config=TINY, search_space={"student_lr": tune.uniform(0.2, 0.1)},
              storage_path=str(tmp_path)).validate()
    with pytest.raises(ConfigError, match="attack"):
        Sweep(name="bad", method="dhbe", base_config=TINY,
              search_space={"backdoor.attack": tune.choice(["badnets", "nope"])}, storage_path=str(tmp_path)).validate()
    with pytest.raises(ConfigError, match="student_lrr"):
        Sweep(name="bad", method="dhbe", base_config=TINY, search_space={"student_lrr": tune.uniform(0.1, 0.2)},
              storage_path=str(tmp_path)).validate()
