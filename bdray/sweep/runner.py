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
from bdray.sweep.seeds import SEED_INDEX
from bdray.sweep.spec import DEFAULT_STORAGE, Sweep, SweepResult, epoch_fields
from bdray.sweep.tables import rebuild_tables, result_tables
from bdray.sweep.trial import sweep_trial, trial_payload

__all__ = ["DEFAULT_STORAGE", "Sweep", "SweepInterrupted", "SweepResult", "rebuild_tables", "run_sweep"]


def run_sweep(sweep: Sweep) -> SweepResult:
    """Validate everything, then run the Tune + Optuna study and write the Parquet tables."""
    sweep.validate()  # before any Ray work
    import optuna
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from bdray.sweep.searcher import PicklableNSGAIISampler, ResumableOptunaSearch, SeedReplicas

    t0 = time.time()
    # Tune's experiment state (what a resumed run trusts) is saved at least this often (seconds)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    if not ray.is_initialized():
        ray.init(log_to_driver=sweep.verbose)
    prebuild_artifacts(sweep)

    param_space = dict(sweep.search_space)
    num_trials = sweep.num_samples * sweep.seeds
    if sweep.search == "optuna":
        journal = sweep.journal_path()
        journal.parent.mkdir(parents=True, exist_ok=True)
        study_storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        metrics = [m for m, _ in sweep.objectives]
        modes = [m for _, m in sweep.objectives]
        sampler = (PicklableNSGAIISampler(seed=sweep.seed) if sweep.sampler == "nsga2"
                   else optuna.samplers.TPESampler(seed=sweep.seed))
        searcher = ResumableOptunaSearch(metric=metrics if len(metrics) > 1 else metrics[0],
                                         mode=modes if len(modes) > 1 else modes[0], sampler=sampler,
                                         study_name=sweep.study_name or sweep.name, storage=study_storage)
        if sweep.seeds > 1:
            searcher = SeedReplicas(searcher, sweep.seeds)
        tune_config = tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=sweep.max_concurrent),
                                      num_samples=num_trials, reuse_actors=sweep.executor == "tune",
                                      scheduler=scheduler(sweep))
    else:
        if sweep.seeds > 1:  # every grid point once per seed
            param_space[SEED_INDEX] = tune.grid_search(list(range(sweep.seeds)))
        tune_config = tune.TuneConfig(num_samples=sweep.num_samples, max_concurrent_trials=sweep.max_concurrent,
                                      reuse_actors=sweep.executor == "tune", scheduler=scheduler(sweep))
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
                                   resume_errored=True, param_space=param_space)
        mark_run(sweep, tune_run, "running")  # running again: a kill or Ctrl-C now leaves it resumable
    else:
        tune_run = f"{sweep.name}-{sweep.method}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune_config,
            run_config=tune.RunConfig(name=tune_run, storage_path=tune_root,
                                      failure_config=tune.FailureConfig(max_failures=sweep.trial_retries),
                                      verbose=1 if sweep.verbose else 0, callbacks=tracking_callbacks(sweep)),
        )
        mark_run(sweep, tune_run, "running")
    grid = tuner.fit()
    if _interrupted(grid, _expected_trials(sweep, param_space)):
        # Ctrl-C (SIGINT): Tune stopped its trials, saved its state and returned.  No table is
        # written; the run stays resumable, like a killed one, by the same command.
        mark_run(sweep, tune_run, "interrupted")
        raise SweepInterrupted(sweep.name, tune_run, sweep.root)
    trials, epochs = result_tables(sweep, tune_run, grid)
    all_trials = S.append_rows(sweep.trials_path, trials)
    S.append_rows(sweep.epochs_path, epochs, key=("sweep", "trial_id", "epoch")) if len(epochs) else None
    mark_run(sweep, tune_run, "finished")
    return SweepResult(sweep, tune_run, trials, all_trials, epochs, time.time() - t0)


class SweepInterrupted(KeyboardInterrupt):
    """The driver was interrupted (SIGINT) mid-sweep; rerunning the same command resumes the run."""

    def __init__(self, name: str, tune_run: str, root: str):
        super().__init__(f"sweep {name} interrupted: its Tune run {tune_run} is saved under {root}; "
                         "the same command resumes it (finished trials stay finished)")
        self.tune_run = tune_run


def _expected_trials(sweep: Sweep, param_space) -> int:
    """How many Tune trials a complete run has: ``num_samples`` × seeds for Optuna, every grid
    combination × ``num_samples`` for a grid."""
    if sweep.search == "optuna":
        return sweep.num_samples * sweep.seeds
    count = sweep.num_samples
    for domain in param_space.values():
        if isinstance(domain, dict) and "grid_search" in domain:
            count *= len(domain["grid_search"])
    return count


def _interrupted(grid, expected: int) -> bool:
    """Whether Tune returned before the run was complete: a trial neither finished nor failed, or
    fewer trials than the run has (Tune returns early only when interrupted)."""
    ended = grid.num_terminated + grid.num_errors
    return ended < len(grid) or len(grid) < expected


def tracking_callbacks(sweep: Sweep) -> list:
    """Tune callbacks that log the trials elsewhere: MLflow when ``sweep.mlflow_uri`` is set.
    (TensorBoard needs none: Tune writes event files into every trial folder whenever
    tensorboardX is installed, which bdray depends on.)"""
    if sweep.mlflow_uri is None:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    if sweep.mlflow_uri.startswith("file:"):
        # MLflow 3 refuses its file store ("maintenance mode") unless told; a local file store is
        # what --mlflow-uri file:... asks for (its readers need the same variable: README)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    return [MLflowLoggerCallback(tracking_uri=sweep.mlflow_uri, experiment_name=sweep.name,
                                 tags={"bdray.method": sweep.method, "bdray.sweep": sweep.name})]


def scheduler(sweep: Sweep):
    """Tune's early-stopping scheduler of the sweep, on its single objective (None: every trial runs
    to its last epoch).  ASHA stops a trial at a rung (1, 3, 9, ... reports) when it is not in the
    top third of the trials that reached that rung; HyperBand runs brackets of the same halving,
    pausing and resuming trials from their checkpoints."""
    if sweep.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

    (metric, mode), = sweep.objectives
    max_t = planned_epochs(sweep.base_config)  # no rung beyond the last epoch
    if sweep.scheduler == "asha":
        return ASHAScheduler(metric=metric, mode=mode, max_t=max_t, grace_period=1, reduction_factor=3)
    return HyperBandScheduler(metric=metric, mode=mode, max_t=max_t, reduction_factor=3)


def planned_epochs(cfg) -> int:
    """How many reports a trial of ``cfg`` makes: the sum of its own ``*epochs`` fields."""
    return max(1, sum(epoch_fields(cfg).values()))
