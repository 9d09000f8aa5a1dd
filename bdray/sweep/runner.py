"""A small API over Ray Tune + Optuna: sweep one method's config, every trial a Ray Train run.

Layout under ``<storage_path>``::

    artifacts/backdoor/<key>/      content-addressed attack artifacts (shared by every sweep)
    <sweep>/trials.parquet         one row per trial (all runs of this sweep)
    <sweep>/epochs.parquet         one row per report
    <sweep>/optuna.journal         the Optuna study (a rerun with the same name continues it)
    <sweep>/tune/<run>/            Tune's own experiment records
    <sweep>/train/<trial_id>/      each trial's Ray Train run and checkpoints
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from bdray.config import Config, ConfigError, check_number, check_positive_int
from bdray.methods import get_method
from bdray.sweep import results as R
from bdray.sweep import storage as S

DEFAULT_STORAGE = str(Path.home() / "bdray_results")


@dataclasses.dataclass
class Sweep:
    """What to sweep and on what resources.

    ``search_space`` maps config field names (dotted for nested configs, e.g.
    ``"backdoor.poison_rate"``) to Ray Tune domains (``tune.loguniform(...)``).
    ``objectives`` are (metric, "max"|"min") pairs; more than one makes a multi-objective study.
    """

    name: str
    method: str
    base_config: Config
    search_space: Dict[str, Any]
    objectives: Sequence[Tuple[str, str]] = (("acc", "max"), ("asr", "min"))
    search: str = "optuna"         # "optuna" (seeded TPE) or "grid" (every tune.grid_search combination)
    study_name: Optional[str] = None  # Optuna study (default: the sweep name; compare sweeps use one per method)
    num_samples: int = 8
    max_concurrent: int = 2
    storage_path: str = DEFAULT_STORAGE
    seed: int = 0
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    # The Tune trial itself only waits on its Train run: by default it reserves no CPU (so that
    # N concurrent trials fit on N CPUs) and a little memory; its Train workers hold the CPUs/GPUs.
    driver_cpus: float = 0.0
    driver_memory_mb: int = 128
    trial_retries: int = 0
    # "train": every trial is a Ray Train run (TorchTrainer; DDP over ``workers_per_trial``).
    # "tune": single-worker trials run the same loop inside the Tune trial itself, which then
    # reserves the worker's CPUs/GPUs: no Train controller or worker group to start, so a
    # grid of many tiny trials (smoke tests, digits-sized sweeps) is several times faster.
    executor: str = "train"
    verbose: bool = True
    fault_at_epoch: Optional[int] = None  # test hook: every trial crashes once, before reporting this epoch

    def validate(self) -> None:
        spec = get_method(self.method)
        if not isinstance(self.base_config, spec.config_cls):
            raise ConfigError("base_config", type(self.base_config).__name__, spec.config_cls.__name__)
        if not self.name or any(ch in self.name for ch in "/\\ "):
            raise ConfigError("name", self.name, "a non-empty name without slashes or spaces")
        if self.search not in ("optuna", "grid"):
            raise ConfigError("search", self.search, "'optuna' or 'grid'")
        check_positive_int("num_samples", self.num_samples)
        check_positive_int("max_concurrent", self.max_concurrent)
        check_positive_int("workers_per_trial", self.workers_per_trial)
        check_number("cpus_per_worker", self.cpus_per_worker, low=0.0, low_open=True)
        check_number("gpus_per_worker", self.gpus_per_worker, low=0.0)
        check_number("driver_cpus", self.driver_cpus, low=0.0)
        check_number("driver_memory_mb", self.driver_memory_mb, low=1, integer=True)
        check_number("trial_retries", self.trial_retries, low=0, integer=True)
        if self.executor not in ("train", "tune"):
            raise ConfigError("executor", self.executor, "'train' (Ray Train per trial) or 'tune' (in the Tune trial)")
        if self.executor == "tune" and self.workers_per_trial != 1:
            raise ConfigError("workers_per_trial", self.workers_per_trial, "1 with executor='tune' (DDP needs 'train')")
        for metric, mode in self.objectives:
            if mode not in ("max", "min"):
                raise ConfigError(f"objectives[{metric}]", mode, "'max' or 'min'")
        for key, domain in self.search_space.items():
            for value in _domain_values(key, domain):  # unknown fields and out-of-range bounds fail here
                self.base_config.replace(**{key: value})

    # -- paths ---------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return S.join(self.storage_path, self.name)

    @property
    def artifact_root(self) -> str:
        return S.join(self.storage_path, "artifacts")

    @property
    def trials_path(self) -> str:
        return S.join(self.root, "trials.parquet")

    @property
    def epochs_path(self) -> str:
        return S.join(self.root, "epochs.parquet")

    def journal_path(self) -> Path:
        if S.is_uri(self.storage_path):  # the Optuna journal needs a POSIX file: keep it on the head node
            return Path.home() / ".cache" / "bdray" / "optuna" / f"{self.name}.journal"
        return Path(self.root) / "optuna.journal"


def _domain_values(key: str, domain: Any) -> list:
    """The values a Tune domain can take at its edges: both bounds, or every category."""
    from ray.tune.search.sample import Categorical, Domain, Float, Integer

    if isinstance(domain, dict) and "grid_search" in domain:
        return list(domain["grid_search"])
    if isinstance(domain, Categorical):
        return list(domain.categories)
    if isinstance(domain, (Float, Integer)):
        if domain.lower is None or domain.upper is None:
            return [domain.sample()]
        if domain.lower >= domain.upper:
            raise ConfigError(f"search_space[{key}]", (domain.lower, domain.upper), "lower bound < upper bound")
        if isinstance(domain, Integer):  # Tune's integer upper bound is exclusive
            return [int(domain.lower), int(domain.upper) - 1]
        return [domain.lower, domain.upper]
    if isinstance(domain, Domain):
        return [domain.sample()]
    return [domain]


@dataclasses.dataclass
class SweepResult:
    sweep: Sweep
    tune_run: str
    trials: pd.DataFrame       # this run's trials
    all_trials: pd.DataFrame   # every trial of this sweep so far (earlier runs too)
    epochs: pd.DataFrame       # this run's per-report rows
    wall_time_s: float


def sweep_trial(params: Dict[str, Any], sweep: Dict[str, Any]) -> None:
    """The Tune trainable: build the trial's config and run it as a Ray Train run, forwarding
    every report to Tune."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from bdray.runtime.ray_train import run_ray_train

    spec = get_method(sweep["method"])
    cfg = spec.config_cls.from_dict(sweep["base_config"]).replace(**params)
    if sweep.get("executor") == "tune":
        from bdray.runtime.tune_trial import TuneTrialContext

        spec.loop(cfg, TuneTrialContext(sweep["artifact_root"], sweep["cpus_per_worker"], sweep["verbose"],
                                        sweep.get("fault_at_epoch")))
        return
    trial_id = ray.tune.get_context().get_trial_id()
    run_ray_train(sweep["method"], cfg, artifact_root=sweep["artifact_root"],
                  storage_path=S.join(sweep["root"], "train"), name=trial_id,
                  num_workers=sweep["workers_per_trial"], use_gpu=sweep["gpus_per_worker"] > 0,
                  cpus_per_worker=sweep["cpus_per_worker"], gpus_per_worker=sweep["gpus_per_worker"] or None,
                  max_failures=sweep.get("trial_retries", 0),  # a lost worker (spot node) restarts from the checkpoint
                  callbacks=[TuneReportCallback()], verbose=sweep["verbose"], fault_at_epoch=sweep.get("fault_at_epoch"))


def artifact_configs(sweep: Sweep) -> List[Any]:
    """The distinct backdoor configs the trials will need, when they can be known up front: the
    base one, or every combination of ``backdoor.*`` grid values."""
    import itertools

    base = getattr(sweep.base_config, "backdoor", None)
    if base is None or not get_method(sweep.method).uses_backdoored_model:
        return []
    keys = [k for k in sweep.search_space if k.startswith("backdoor.")]
    if not keys:
        return [base]
    values = []
    for k in keys:
        domain = sweep.search_space[k]
        if not (isinstance(domain, dict) and "grid_search" in domain):
            return []  # sampled: each trial gets (or, under a lock, trains) its own
        values.append(domain["grid_search"])
    configs = {}
    for combo in itertools.product(*values):
        cfg = sweep.base_config.replace(**dict(zip(keys, combo))).backdoor
        configs[cfg.digest()] = cfg
    return list(configs.values())


def _prebuild_artifacts(sweep: Sweep) -> None:
    """Train the attack artifacts the trials share, on cluster resources, before trials start
    (in parallel when there are several)."""
    import ray

    configs = artifact_configs(sweep)
    if not configs:
        return

    def build(root, cfg_dict):
        import torch
        from bdray.methods.attack.backdoor import BackdoorConfig
        from bdray.methods.attack.threat import backdoor_artifact
        from bdray.train.context import default_device

        if not torch.cuda.is_available():
            torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        _, meta, trained = backdoor_artifact(BackdoorConfig.from_dict(cfg_dict), root, default_device())
        return meta["metrics"], trained

    remote = ray.remote(num_cpus=sweep.cpus_per_worker, num_gpus=sweep.gpus_per_worker)(build)
    futures = [remote.remote(sweep.artifact_root, cfg.to_dict()) for cfg in configs]
    for cfg, (metrics, trained) in zip(configs, ray.get(futures)):
        print(f"[bdray] attack artifact {cfg.attack} {cfg.attack_params.get('trigger_size', '')} "
              f"{'trained' if trained else 'reused'}: acc={metrics['acc']:.4f} asr={metrics['asr']:.4f}", flush=True)


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
    _prebuild_artifacts(sweep)

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
    payload = {"method": sweep.method, "base_config": sweep.base_config.to_dict(), "root": sweep.root,
               "artifact_root": sweep.artifact_root, "workers_per_trial": sweep.workers_per_trial,
               "cpus_per_worker": sweep.cpus_per_worker, "gpus_per_worker": sweep.gpus_per_worker,
               "verbose": sweep.verbose, "executor": sweep.executor, "trial_retries": sweep.trial_retries,
               "fault_at_epoch": sweep.fault_at_epoch}
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
        _mark_run(sweep, tune_run, "running")
    grid = tuner.fit()
    trials, epochs = _tables(sweep, tune_run, grid)
    all_trials = S.append_rows(sweep.trials_path, trials)
    S.append_rows(sweep.epochs_path, epochs, key=("sweep", "trial_id", "epoch")) if len(epochs) else None
    _mark_run(sweep, tune_run, "finished")
    return SweepResult(sweep, tune_run, trials, all_trials, epochs, time.time() - t0)


def _run_marker(sweep: Sweep, tune_run: str) -> str:
    return S.join(sweep.root, "runs", f"{tune_run}.json")


def _mark_run(sweep: Sweep, tune_run: str, status: str) -> None:
    """``<sweep>/runs/<tune run>.json``: which Tune experiments of this sweep finished; a run still
    marked "running" when the same sweep starts again was interrupted and is resumed."""
    record = {"tune_run": tune_run, "method": sweep.method, "status": status,
              "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    S.write_text_atomic(_run_marker(sweep, tune_run), json.dumps(record))


def unfinished_run(sweep: Sweep) -> Optional[str]:
    """The latest Tune experiment of this sweep and method that started and never finished."""
    runs = []
    for path in S.list_files(S.join(sweep.root, "runs"), suffix=".json"):
        record = json.loads(S.read_text(path))
        if record.get("method") == sweep.method and record.get("status") == "running":
            runs.append(record["tune_run"])
    return max(runs) if runs else None  # names end in a timestamp


def _tables(sweep: Sweep, tune_run: str, grid) -> Tuple[pd.DataFrame, pd.DataFrame]:
    spec = get_method(sweep.method)
    trial_rows: List[Dict[str, Any]] = []
    epoch_rows: List[Dict[str, Any]] = []
    for result in grid:
        params = {k: v for k, v in (result.config or {}).items() if k in sweep.search_space}
        cfg = spec.config_cls.from_dict(sweep.base_config.to_dict()).replace(**params)
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id") or Path(result.path).name.split("_")[-2]
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        if spec.members is not None:  # a packed population: one row per member, as if K trials
            trial_rows.extend(R.member_trial_rows(spec, sweep=sweep.name, tune_run=tune_run, trial_id=trial_id,
                                                  cfg=cfg, metrics=metrics, error=error))
            epoch_rows.extend(R.member_epoch_rows(spec, sweep=sweep.name, tune_run=tune_run, trial_id=trial_id,
                                                  cfg=cfg, history=result.metrics_dataframe))
            continue
        trial_rows.append(R.trial_row(sweep=sweep.name, tune_run=tune_run, trial_id=trial_id, method=sweep.method,
                                      cfg=cfg, metrics=metrics, error=error))
        epoch_rows.extend(R.epoch_rows(sweep=sweep.name, tune_run=tune_run, trial_id=trial_id,
                                       history=result.metrics_dataframe))
    return R.frame(trial_rows), R.frame(epoch_rows, leading=("sweep", "tune_run", "trial_id", "epoch"))


def rebuild_tables(sweep: Sweep) -> pd.DataFrame:
    """Rebuild ``trials.parquet``/``epochs.parquet`` rows of this sweep and method from Tune's own
    records (every experiment folder under ``<sweep>/tune``), e.g. after the tables were lost or a
    driver died before writing them.  Rows of other methods in the same folder are kept."""
    import pyarrow.fs as pafs
    from ray.tune import ExperimentAnalysis, ResultGrid

    prefix = f"{sweep.name}-{sweep.method}-"
    tune_root = S.join(sweep.root, "tune")
    fs, base = S.filesystem(tune_root)

    runs = sorted(info.base_name for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
                  if info.type == pafs.FileType.Directory and info.base_name.startswith(prefix))
    trials, epochs = [], []
    for run in runs:
        grid = ResultGrid(ExperimentAnalysis(S.join(tune_root, run)))
        t, e = _tables(sweep, run, grid)
        trials.append(t)
        epochs.append(e)
    trials_df = pd.concat(trials, ignore_index=True) if trials else pd.DataFrame()
    if len(trials_df):
        all_trials = S.append_rows(sweep.trials_path, trials_df)
        epochs_df = pd.concat(epochs, ignore_index=True)
        if len(epochs_df):
            S.append_rows(sweep.epochs_path, epochs_df, key=("sweep", "trial_id", "epoch"))
        return all_trials
    return trials_df
