"""A sweep driver interrupted with Ctrl-C (SIGINT to its process group, as a terminal sends it), then
killed with SIGKILL mid-sweep: each time the same command continues the same Tune experiment and
Optuna study; finished trials are not rerun; the trials table holds every trial once."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]
# Each trial must outlast the wait between "2 trials finished" and the kill (Tune's state save
# period, set to 0.5 s below, plus polling): with 1,500 epochs a trial took < 1 s on a quiet machine
# and the driver finished every trial before the kill. 6,000 epochs ≈ 4-8 s a trial.
EPOCHS = 6000
TRIALS = 4  # one finished before Ctrl-C, one more before SIGKILL, the rest after

DRIVER = '''
import sys
from ray import tune
from bdray.methods.fairness.dba_toy import DBAToyConfig
from bdray.sweep import Sweep, SweepInterrupted, run_sweep

EPOCHS, TRIALS = int(sys.argv[2]), int(sys.argv[3])
sweep = Sweep(name="killed", method="dba_toy", base_config=DBAToyConfig(epochs=EPOCHS, points_per_class=400),
              search_space={"bias_rate": tune.uniform(0.5, 0.9)}, objectives=(("boundary_error", "min"),),
              search="optuna", num_samples=TRIALS, max_concurrent=1, storage_path=sys.argv[1], executor="tune",
              verbose=False)
try:
    result = run_sweep(sweep)
except SweepInterrupted:
    print("INTERRUPTED", flush=True)
    sys.exit(130)
print("TRIALS", len(result.trials), flush=True)
'''


def _finished_trial_dirs(storage: Path) -> list:
    """Tune trial folders whose result.json holds the trial's (single) report: finished trials."""
    return [p.parent for p in storage.glob("killed/tune/*/sweep_trial_*/result.json") if p.stat().st_size > 0]


def _wait_for_finished(storage: Path, count: int, driver, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while len(_finished_trial_dirs(storage)) < count and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)


def test_interrupted_then_killed_driver_resumes_the_same_experiment_and_study(tmp_path):
    import optuna

    storage = tmp_path / "results"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "RAY_ADDRESS": "local", "PYTHONPATH": str(REPO), "TUNE_GLOBAL_CHECKPOINT_S": "0.5"}
    command = [sys.executable, str(script), str(storage), str(EPOCHS), str(TRIALS)]
    markers = lambda: [json.loads(p.read_text()) for p in (storage / "killed" / "runs").glob("*.json")]  # noqa: E731

    # 1. Ctrl-C after the first trial: Tune stops the running trial, saves its state and returns; the
    #    driver writes no table, marks the run interrupted and exits 130
    first = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    _wait_for_finished(storage, 1, first)
    interrupted_after = {p.name for p in _finished_trial_dirs(storage)}
    os.killpg(first.pid, signal.SIGINT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 130 and "INTERRUPTED" in out, out[-3000:]
    assert 1 <= len(interrupted_after) < TRIALS, "the driver was not interrupted mid-sweep"
    assert not (storage / "killed" / "trials.parquet").exists()
    (marker,) = markers()
    assert marker["status"] == "interrupted"

    # 2. the same command resumes it; SIGKILL once one more trial finished
    again = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _wait_for_finished(storage, len(interrupted_after) + 1, again)
    done_before = {p.name for p in _finished_trial_dirs(storage)}
    time.sleep(1.5)  # past Tune's experiment-state save period (0.5 s): these count as finished on resume
    os.killpg(again.pid, signal.SIGKILL)  # the driver and the local Ray it started
    again.wait(timeout=60)
    assert interrupted_after < done_before and len(done_before) < TRIALS, "the driver was not killed mid-sweep"
    assert not (storage / "killed" / "trials.parquet").exists(), (
        "the driver wrote its table before the kill: its trials finished faster than the test waits")
    assert [m["status"] for m in markers()] == ["running"]

    # 3. the same command again finishes the run
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    from bdray.sweep import storage as S

    trials = S.read_parquet(str(storage / "killed" / "trials.parquet"))
    assert len(trials) == TRIALS and trials["trial_id"].is_unique and (trials["status"] == "TERMINATED").all()
    assert trials["tune_run"].nunique() == 1 and trials["tune_run"].iloc[0] == marker["tune_run"]
    runs = list((storage / "killed" / "tune").iterdir())
    assert [p.name for p in runs if p.is_dir()] == [marker["tune_run"]]  # the same experiment, continued
    for name in done_before:  # finished before the kill: not run again (one report line, as before)
        lines = (storage / "killed" / "tune" / marker["tune_run"] / name / "result.json").read_text().splitlines()
        assert len(lines) == 1
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(storage / "killed" / "optuna.journal")))
    study = optuna.load_study(study_name="killed", storage=journal)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == TRIALS  # one study, every trial told once
    assert json.loads(next((storage / "killed" / "runs").glob("*.json")).read_text())["status"] == "finished"

    # the tables can be rebuilt from Tune's own records (README: "When things go wrong")
    from ray import tune

    from bdray.methods.fairness.dba_toy import DBAToyConfig
    from bdray.sweep import Sweep
    from bdray.sweep.tables import rebuild_tables

    (storage / "killed" / "trials.parquet").unlink()
    (storage / "killed" / "epochs.parquet").unlink()
    sweep = Sweep(name="killed", method="dba_toy", base_config=DBAToyConfig(epochs=EPOCHS, points_per_class=400),
                  search_space={"bias_rate": tune.uniform(0.5, 0.9)}, objectives=(("boundary_error", "min"),),
                  search="optuna", num_samples=TRIALS, storage_path=str(storage))
    rebuilt = rebuild_tables(sweep)
    assert sorted(rebuilt["trial_id"]) == sorted(trials["trial_id"])
    assert rebuilt.set_index("trial_id")["boundary_error"].to_dict() == trials.set_index("trial_id")[
        "boundary_error"].to_dict()
    assert len(S.read_parquet(str(storage / "killed" / "epochs.parquet"))) == TRIALS
