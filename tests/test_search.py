"""What a sweep's search does beyond one seed per configuration: seed replicas (Optuna told each
configuration's mean; tables with 95 % CIs; error bars), NSGA-II, early stopping by ASHA, and the
search choosing on the validation split (Optuna told ``val_*`` metrics, never the test split's).
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

BASE = BackdoorConfig(epochs=2, batch_size=64, val_fraction=0.1)


def study_of(sweep):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep.journal_path())))
    return optuna.load_study(study_name=sweep.name, storage=storage)


@pytest.fixture(scope="module")
def seeds_sweep(ray_local, tmp_path_factory):
    """2 configurations × 2 seeds, NSGA-II, logged to an MLflow file store too."""
    root = tmp_path_factory.mktemp("seeds")
    sweep = Sweep(name="seeds", method="backdoor", base_config=BASE, search_space={"lr": tune.loguniform(0.01, 0.1)},
                  num_samples=2, seeds=2, sampler="nsga2", max_concurrent=2, storage_path=str(root / "results"),
                  verbose=False, executor="tune", mlflow_uri=(root / "mlruns").as_uri())
    run_sweep(sweep)
    return sweep


def test_two_seeds_give_ci_columns_error_bars_and_optuna_sees_the_means(seeds_sweep):
    sweep = seeds_sweep
    trials = S.read_parquet(sweep.trials_path)
    assert len(trials) == 4 and (trials["status"] == "TERMINATED").all()
    per_config = trials.groupby("config_id")
    assert per_config.ngroups == 2 and (per_config["seed_index"].apply(sorted).map(tuple) == (0, 1)).all()
    assert (per_config["lr"].nunique() == 1).all()  # replicas share the configuration ...
    assert (per_config["seed"].nunique() == 2).all()  # ... not the seed (the attack's seed too)

    # NSGA-II ran a two-objective study with one Optuna trial per configuration, told the replicas'
    # means of the validation split's metrics (the default objectives with a validation split)
    assert sweep.objectives == (("val_acc", "max"), ("val_asr", "min")) and (trials["selected_on"] == "validation").all()
    study = study_of(sweep)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and all(len(t.values) == 2 for t in done)
    means = per_config[["lr", "acc", "asr", "val_acc", "val_asr"]].mean()
    told_test = []
    for t in done:
        row = means.iloc[(means["lr"] - t.params["lr"]).abs().argmin()]
        assert t.values[0] == pytest.approx(row["val_acc"], abs=1e-6)
        assert t.values[1] == pytest.approx(row["val_asr"], abs=1e-6)
        told_test.append(t.values[0] == pytest.approx(row["acc"], abs=1e-6))
    assert not all(told_test), "validation and test accuracy coincide: the check cannot tell them apart"
    assert not any(k in ("acc", "asr") for t in done for k in t.user_attrs)  # no test metric stored with the study

    table = config_means(trials, ["acc", "asr"])
    assert len(table) == 2 and (table["seeds"] == 2).all() and table["acc_ci95"].notna().all()
    paths = write_report(sweep.root, params=["lr"])
    text = open(paths["seeds_md"]).read()
    assert "acc_ci95" in text and "asr_ci95" in text
    assert "tradeoff_png" in paths
    # compute: one CPU held per trial (executor tune), no GPU
    assert list(trials["cpu_hours"]) == pytest.approx(list(trials["wall_time_s"] / 3600)) and (trials["gpu_hours"] == 0).all()
    assert "CPU-hours" in open(paths["trials_md"]).read()


def test_mlflow_file_store_gets_every_trial(seeds_sweep, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when told

    client = mlflow.MlflowClient(tracking_uri=seeds_sweep.mlflow_uri)
    experiment = client.get_experiment_by_name("seeds")
    runs = client.search_runs([experiment.experiment_id])
    trials = S.read_parquet(seeds_sweep.trials_path)
    assert len(runs) == len(trials) == 4
    logged = sorted(round(run.data.metrics["val_acc"], 6) for run in runs)
    assert logged == sorted(round(v, 6) for v in trials["val_acc"])  # each run's last val_acc is its trial's
    assert all(run.data.tags.get("bdray.method") == "backdoor" for run in runs)


def _tfevents_scalars(path) -> dict:
    """tag -> values of a TensorBoard event file (records: length, crc, Event proto, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict = {}
    data = path.read_bytes()
    at = 0
    while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
            out.setdefault(value.tag, []).append(value.simple_value)
    return out


def test_tensorboard_event_files_hold_the_metrics(seeds_sweep):
    from pathlib import Path

    trials = S.read_parquet(seeds_sweep.trials_path)
    files = sorted(Path(seeds_sweep.root, "tune").glob("*/sweep_trial_*/events.out.tfevents.*"))
    assert len(files) == 4  # one per trial, in the trial's own folder (tensorboard --logdir <sweep>/tune)
    last = sorted(round(_tfevents_scalars(f)["ray/tune/val_acc"][-1], 5) for f in files)
    assert last == sorted(round(v, 5) for v in trials["val_acc"])


def test_optuna_dashboard_serves_the_study(seeds_sweep):
    import json
    import subprocess
    import time
    import urllib.request

    from tests.ray_nodes import free_port

    port = free_port()
    server = subprocess.Popen(["optuna-dashboard", "--host", "127.0.0.1", "--port", str(port),
                               str(seeds_sweep.journal_path())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, studies = time.time() + 60, None
        while studies is None and time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as reply:
                    studies = json.loads(reply.read())["study_summaries"]
            except OSError:
                time.sleep(0.5)
        (study,) = [s for s in studies if s["study_name"] == "seeds"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0",
                                    timeout=10) as reply:
            detail = json.loads(reply.read())
        told = {t.number: t.values for t in study_of(seeds_sweep).trials}
        served = {t["number"]: t["values"] for t in detail["trials"]}
        assert served == told and len(served) == 2 and detail["directions"] == ["maximize", "minimize"]
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_asha_stops_hopeless_trials_early(ray_local, tmp_path):
    # one trial that learns, then two that cannot (lr 1e-5): ASHA's first rung (1 epoch, keep the top
    # third) stops the hopeless ones; one at a time, so the good trial has reached the rung first
    sweep = Sweep(name="asha", method="backdoor", base_config=BASE.replace(epochs=4),
                  search_space={"lr": tune.grid_search([0.05, 1e-5, 1e-5])}, search="grid", num_samples=1,
                  scheduler="asha", objectives=(("val_acc", "max"),), max_concurrent=1, storage_path=str(tmp_path),
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
