"""What a sweep is: one method's base config, a search space over its fields, objectives and
the resources trials run on (``Sweep``, validated before any Ray work), and what a run returns."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import pandas as pd

from bdray.config import Config, ConfigError, check_number, check_positive_int
from bdray.methods import get_method
from bdray.sweep import storage as S
from bdray.sweep.seeds import trial_config

DEFAULT_STORAGE = str(Path.home() / "bdray_results")
SAMPLERS = ("tpe", "nsga2")
SCHEDULERS = ("none", "asha", "hyperband")


@dataclasses.dataclass
class Sweep:
    """What to sweep and on what resources.

    ``search_space`` maps config field names (dotted for nested configs, e.g.
    ``"backdoor.poison_rate"``) to Ray Tune domains (``tune.loguniform(...)``).
    ``objectives`` are (metric, "max"|"min") pairs; more than one makes a multi-objective study.
    By default (``None``) they are ``val_acc`` max / ``val_asr`` min when the base config holds a
    validation split out of its training data (``backdoor.val_fraction`` > 0: the sweep scripts'
    ``--val-fraction``, 0.1 by default), else the test split's ``acc`` / ``asr`` (said in ``describe()``).
    """

    name: str
    method: str
    base_config: Config
    search_space: Dict[str, Any]
    objectives: Optional[Sequence[Tuple[str, str]]] = None
    search: str = "optuna"         # "optuna" (seeded sampler) or "grid" (every tune.grid_search combination)
    sampler: str = "tpe"           # Optuna's sampler: "tpe" or "nsga2" (NSGA-II, for multi-objective studies)
    # Early stopping by a Tune scheduler on the (single, scalar) objective: "asha", "hyperband" or "none"
    scheduler: str = "none"
    seeds: int = 1                 # replicas of every configuration (seeds shifted by 0..seeds-1; bdray.sweep.seeds)
    study_name: Optional[str] = None  # Optuna study (default: the sweep name; compare sweeps use one per method)
    num_samples: int = 8           # configurations (each run ``seeds`` times)
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
    # MLflow tracking URI (``file:/path/mlruns`` for a local file store; needs the ``tracking`` extra):
    # every trial becomes an MLflow run of the experiment named after the sweep
    mlflow_uri: Optional[str] = None
    fault_at_epoch: Optional[int] = None  # test hook: every trial crashes once, before reporting this epoch

    def __post_init__(self) -> None:
        if self.objectives is None:
            prefix = "val_" if val_fraction(self.base_config) > 0 else ""
            self.objectives = ((f"{prefix}acc", "max"), (f"{prefix}asr", "min"))
        self.objectives = tuple(tuple(pair) for pair in self.objectives)

    @property
    def selected_on(self) -> str:
        """Which split the search chose on (``selection_split``)."""
        return selection_split(self.objectives)

    def validate(self) -> None:
        spec = get_method(self.method)
        if not isinstance(self.base_config, spec.config_cls):
            raise ConfigError("base_config", type(self.base_config).__name__, spec.config_cls.__name__)
        if not self.name or any(ch in self.name for ch in "/\\ "):
            raise ConfigError("name", self.name, "a non-empty name without slashes or spaces")
        if self.search not in ("optuna", "grid"):
            raise ConfigError("search", self.search, "'optuna' or 'grid'")
        if self.sampler not in SAMPLERS:
            raise ConfigError("sampler", self.sampler, f"one of {list(SAMPLERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError("scheduler", self.scheduler, f"one of {list(SCHEDULERS)}")
        if self.scheduler != "none" and len(self.objectives) != 1:
            raise ConfigError("scheduler", self.scheduler,
                              f"a single scalar objective to stop trials on (got {[m for m, _ in self.objectives]}; "
                              "e.g. --objective der:max)")
        if self.scheduler == "hyperband" and self.executor != "tune":
            # HyperBand pauses trials and resumes them later; a paused Tune trial whose Ray Train run
            # holds its workers left a 2-CPU sweep waiting forever (seen in testing): use ASHA, which
            # only stops trials, or run the trials inside their Tune trials
            raise ConfigError("scheduler", self.scheduler, "'asha' with executor='train' ('hyperband' needs "
                                                           "executor='tune': it pauses and resumes trials)")
        check_positive_int("seeds", self.seeds)
        if not self.objectives:
            raise ConfigError("objectives", self.objectives, "at least one (metric, 'max'|'min') pair")
        check_positive_int("num_samples", self.num_samples)
        check_positive_int("max_concurrent", self.max_concurrent)
        check_positive_int("workers_per_trial", self.workers_per_trial)
        check_number("cpus_per_worker", self.cpus_per_worker, low=0.0, low_open=True)
        check_number("gpus_per_worker", self.gpus_per_worker, low=0.0)
        check_number("driver_cpus", self.driver_cpus, low=0.0)
        check_number("driver_memory_mb", self.driver_memory_mb, low=1, integer=True)
        check_number("trial_retries", self.trial_retries, low=0, integer=True)
        if self.mlflow_uri is not None:
            try:
                import mlflow  # noqa: F401
            except ImportError:
                raise ConfigError("mlflow_uri", self.mlflow_uri, "a tracking URI with MLflow installed "
                                  "(pip install 'bdray[tracking]')") from None
        if self.executor not in ("train", "tune"):
            raise ConfigError("executor", self.executor, "'train' (Ray Train per trial) or 'tune' (in the Tune trial)")
        if self.executor == "tune" and self.workers_per_trial != 1:
            raise ConfigError("workers_per_trial", self.workers_per_trial, "1 with executor='tune' (DDP needs 'train')")
        for metric, mode in self.objectives:
            if mode not in ("max", "min"):
                raise ConfigError(f"objectives[{metric}]", mode, "'max' or 'min'")
            if metric.startswith("val_") and val_fraction(self.base_config) <= 0:
                raise ConfigError(f"objectives[{metric}]", metric, "a test-split metric, or a validation split to "
                                  "report it on: backdoor.val_fraction > 0 (--val-fraction)")
        for key, domain in self.search_space.items():
            for value in _domain_values(key, domain):  # unknown fields and out-of-range bounds fail here
                trial_config(self.base_config, {key: value})

    def describe(self) -> str:
        """One line of what will run, printed before any training: method, data, model and epochs,
        trials, search, executor, resources and where the results go."""
        cfg = self.base_config
        attack = getattr(cfg, "backdoor", cfg if hasattr(cfg, "attack") else None)
        if attack is not None:
            data = (f"{attack.dataset}/{attack.model}, {attack.attack} at poison_rate {attack.poison_rate} "
                    f"({attack.epochs} attack epochs)")
        elif hasattr(cfg, "dataset"):
            data = f"{cfg.dataset}/{getattr(cfg, 'model', 'its model')}"
        else:
            data = "its own data"
        epochs = ", ".join(f"{name}={value}" for name, value in epoch_fields(cfg).items())
        space = ", ".join(self.search_space) or "none"
        search = self.search if self.search == "grid" else f"optuna {self.sampler}"
        objectives = ", ".join(f"{m} {d}" for m, d in self.objectives) + f", chosen on the {self.selected_on} split"
        if self.selected_on == "test" and {m for m, _ in self.objectives} & {"acc", "asr", "der"}:
            objectives += " (no validation split: --val-fraction)"
        seeds = f" x {self.seeds} seeds" if self.seeds > 1 else ""
        stopping = f", early stopping {self.scheduler}" if self.scheduler != "none" else ""
        return (f"[bdray] sweep {self.name}: {self.method} on {data}; {epochs or 'no epochs field'}; "
                f"{self.num_samples} configuration(s){seeds} ({search} over {space}; {objectives}{stopping}), "
                f"{self.max_concurrent} at a time, "
                f"executor {self.executor}, {self.cpus_per_worker:g} CPU / {self.gpus_per_worker:g} GPU per worker; "
                f"results in {self.root}")

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


def epoch_fields(cfg: Config) -> Dict[str, int]:
    """The config's own ``*epochs`` fields (a defense's nested attack config trains elsewhere, as an
    artifact): what ``describe`` prints and what bounds a scheduler's rungs."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f.name.endswith("epochs") and type(getattr(cfg, f.name)) is int}


def selection_split(objectives: Sequence[Tuple[str, str]]) -> str:
    """"validation" when every objective is a ``val_`` metric (of the split held out of the training
    data), else "test"."""
    return "validation" if all(metric.startswith("val_") for metric, _ in objectives) else "test"


def objectives_text(objectives: Sequence[Tuple[str, str]]) -> str:
    """``(("val_acc", "max"), ("val_asr", "min"))`` -> ``"val_acc:max val_asr:min"`` (the
    ``objectives`` column; ``--objective`` takes the same words)."""
    return " ".join(f"{metric}:{mode}" for metric, mode in objectives)


def val_fraction(cfg: Config) -> float:
    """The validation share of ``cfg``'s training data (its own ``val_fraction`` or its backdoor's; 0 if none)."""
    holder = getattr(cfg, "backdoor", cfg)
    return float(getattr(holder, "val_fraction", 0.0) or 0.0)


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
