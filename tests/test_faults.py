"""A trial that crashes mid-training is retried from its last checkpoint and finishes, with one
epoch row per epoch; without retries its error lands in the trials table. (Tune's retry of the
trial; Ray Train's restart of a worker group from its checkpoint is exercised by a real node loss in
tests/test_autoscaling.py.)"""
import pytest

from bdray.methods.attack.backdoor import BackdoorConfig

pytestmark = pytest.mark.ray


def _crashing_sweep(tmp_path, name, retries):
    from ray import tune

    from bdray.sweep import Sweep

    return Sweep(name=name, method="backdoor", base_config=BackdoorConfig(epochs=4, batch_size=256),
                 search_space={"seed": tune.grid_search([0])}, search="grid", num_samples=1,
                 storage_path=str(tmp_path), executor="tune", trial_retries=retries, fault_at_epoch=2,
                 verbose=False)


def test_crashed_trial_is_retried_from_its_checkpoint(ray_local, tmp_path):
    from bdray.sweep import run_sweep

    result = run_sweep(_crashing_sweep(tmp_path, "crash_tune", retries=1))
    (trial,) = result.trials.to_dict("records")
    assert trial["status"] == "TERMINATED" and trial["epoch"] == 4
    assert trial["resumed_from_epoch"] == 1  # restarted from the checkpoint of epoch 1, not from scratch
    epochs = result.epochs[result.epochs["trial_id"] == trial["trial_id"]]
    assert sorted(epochs["epoch"]) == [1, 2, 3, 4]  # no duplicated (or missing) epoch rows
    # the determinism settings are recorded with the trial
    assert trial["torch_version"] and trial["cudnn_benchmark"] in (0, 1) and trial["torch_threads"] >= 1
    assert "torch_deterministic_algorithms" in trial and "cudnn_deterministic" in trial


def test_without_retries_the_error_is_in_the_trials_table(ray_local, tmp_path):
    from bdray.sweep import run_sweep

    result = run_sweep(_crashing_sweep(tmp_path, "crash_noretry", retries=0))
    (trial,) = result.trials.to_dict("records")
    assert trial["status"] == "ERROR" and "injected fault before reporting epoch 2" in trial["error"]
