"""Run a sweep: Ray Tune + Optuna over one method's config, every trial a Ray Train run (or the
loop inside the Tune trial), the results appended to the sweep's Parquet tables.

Layout under ``<storage_path>``::

    artifacts/backdoor/<key>/      content-addressed attack artifacts (shared by every sweep)
    <sweep>/trials.parquet         one row per trial (all runs of this sweep)
    <sweep>/epochs.parquet         one row per report
    <sweep>/optuna.journal         the Optuna study (a rerun with the same name continues it)
    <sweep>/runs/<run>.json        which Tune experiments started / finished (``bdray.sweep.runs``)
    <sweep>/tune/<run>/            Tune's own experiment records
    <sweep>/train/<trial_id>/      each trial's Ray Train run and checkpoints
"""
from __future__ import annotations

import datetime as dt
import os
import time

from bdray.sweep import storage as S
from bdray.sweep.prebuild import prebuild_artifacts
from bdray.sweep.runs import mark_run, unfinished_run
from bdray.sweep.spec import DEFAULT_STORAGE, Sweep, SweepResult
from bdray.sweep.tables import rebuild_tables, result_tables
from bdray.sweep.trial import sweep_trial, trial_payload

__all__ = ["DEFAULT_STORAGE", "Sweep", "SweepResult", "rebuild_tables", "run_sweep"]


def run_sweep(sweep: Sweep) -> SweepResult:
    """Validate everything, then run the Tune + Optuna study and write the Parquet tables."""
    sweep.validate()  # before any Ray work
    import optuna
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from bdray.sweep.searcher import ResumableOptunaSearch

    t0 = time.time()
    # Tune's experiment state (what a resumed run trusts) is saved at least this often (seconds)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    if not ray.is_initialized():
        ray.init(log_to_driver=sweep.verbose)
    prebuild_artifacts(sweep)

    if sweep.search == "optuna":
        journal = sweep.journal_path()
        journal.parent.mkdir(parents=True, exist_ok=True)
        study_storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        metrics = [m for m, _ in sweep.objectives]
        modes = [m for _, m in sweep.objectives]
        searcher = ResumableOptunaSearch(metric=metrics if len(metrics) > 1 else metrics[0],
                                mode=modes if len(modes) > 1 else modes[0],
                                sampler=optuna.samplers.TPESampler(seed=sweep.seed),
                                study_name=sweep.study_name or sweep.name, storage=study_storage)
        tune_config = tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=sweep.max_concurrent),
                                      num_samples=sweep.num_samples, reuse_actors=sweep.executor == "tune")
    else:
        tune_config = tune.TuneConfig(num_samples=sweep.num_samples, max_concurrent_trials=sweep.max_concurrent,
                                      reuse_actors=sweep.executor == "tune")
    payload = trial_payload(sweep)
    if sweep.executor == "tune":  # the trial runs the loop: it holds the worker's resources
        trial_resources = {"cpu": sweep.cpus_per_worker, "gpu": sweep.gpus_per_worker}
    else:
        trial_resources = {"cpu": sweep.driver_cpus, "memory": sweep.driver_memory_mb * 2**20}
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, sweep=payload), trial_resources)
    tune_root = S.join(sweep.root, "tune")
    interrupted = unfinished_run(sweep)
    if interrupted is not None and tune.Tuner.can_restore(S.join(tune_root, interrupted)):
        # the driver died mid-run (killed, node lost): continue that Tune experiment -- finished
        # trials stay finished, unfinished ones resume from their checkpoints -- and its Optuna study
        tune_run = interrupted
        print(f"[bdray] resuming the interrupted run {tune_run} of sweep {sweep.name}", flush=True)
        tuner = tune.Tuner.restore(S.join(tune_root, tune_run), trainable=trainable, resume_unfinished=True,
                                   resume_errored=True, param_space=dict(sweep.search_space))
    else:
        tune_run = f"{sweep.name}-{sweep.method}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        tuner = tune.Tuner(
            trainable,
            param_space=dict(sweep.search_space),
            tune_config=tune_config,
            run_config=tune.RunConfig(name=tune_run, storage_path=tune_root,
                                      failure_config=tune.FailureConfig(max_failures=sweep.trial_retries),
                                      verbose=1 if sweep.verbose else 0),
        )
        mark_run(sweep, tune_run, "running")
    grid = tuner.fit()
    trials, epochs = result_tables(sweep, tune_run, grid)
    all_trials = S.append_rows(sweep.trials_path, trials)
    S.append_rows(sweep.epochs_path, epochs, key=("sweep", "trial_id", "epoch")) if len(epochs) else None
    mark_run(sweep, tune_run, "finished")
    return SweepResult(sweep, tune_run, trials, all_trials, epochs, time.time() - t0)
