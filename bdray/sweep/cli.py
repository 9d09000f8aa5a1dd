"""Command-line pieces every sweep script shares: data/model/attack flags, resources, storage."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Tuple

from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.config import ConfigError
from bdray.sweep.seeds import VARIANT
from bdray.sweep.spec import DEFAULT_STORAGE, SAMPLERS, SCHEDULERS


def add_common_args(parser: argparse.ArgumentParser, default_samples: int = 6) -> argparse.ArgumentParser:
    """The run flags plus the attack flags (dataset, model, attack, poisoning)."""
    from bdray.attacks.specs import ATTACKS
    from bdray.data import DATASETS
    from bdray.models import MODELS

    add = parser.add_argument
    add("--dataset", default="digits", help=f"one of: {DATASETS.help()}")
    add("--data-root", default=None, help="data folder; the .npz file for --dataset npz; for --dataset folder a "
                                           "folder or .tar/.tar.gz/.zip archive of train/<class>/* and test/<class>/*")
    add("--image-size", type=int, default=None, help="--dataset folder: resize every image to N×N (for images of "
                                                     "mixed sizes)")
    add("--download", action="store_true", help="let torchvision download the dataset")
    add("--model", default=None, help=f"override the preset's model, one of: {MODELS.help()}")
    add("--attack", default="badnets", help=f"one of: {ATTACKS.help()}")
    add("--poison-rate", type=float, default=0.1)
    add("--target-class", type=int, default=0)
    add("--trigger-size", type=int, default=None)
    add("--val-fraction", type=float, default=0.1,
        help="share of the training data held out as the validation split (never trained on): every method "
             "reports val_* metrics there and the search chooses on them; 0 = none (choose on the test split)")
    add("--budget", choices=("auto", "cpu", "paper", "paper-cpu"), default="auto",
        help="cpu: the methods' CPU-sized defaults; paper: the papers' settings; paper-cpu: the papers' model "
             "and clean counts with CPU-sized epochs (32×32 colour: WRN-16-1); auto: cpu for digits, npz and "
             "folder data, paper for the torchvision datasets (bdray/presets.py, printed before training)")
    return add_run_args(parser, default_samples)


def add_run_args(parser: argparse.ArgumentParser, default_samples: int = 6) -> argparse.ArgumentParser:
    """Flags every sweep has: smoke test, trials, storage, resources, executor."""
    add = parser.add_argument
    add("--smoke-test", action="store_true", help="tiny trainings and few trials, to check the plumbing")
    add("--num-samples", type=int, default=None,
        help=f"trials of an Optuna search (default {default_samples}; 2 with --smoke-test unless given)")
    add("--max-concurrent", type=int, default=2)
    add("--storage-path", default=DEFAULT_STORAGE, help="local folder or s3:// / gs:// URI")
    add("--name", default=None, help="sweep name (and Optuna study); reuse it to add trials")
    add("--seed", type=int, default=0, help="seed of the search")
    add("--workers-per-trial", type=int, default=1, help="Ray Train workers (DDP) per trial")
    add("--cpus-per-trial", type=float, default=1.0, help="CPUs per Train worker")
    add("--gpus-per-trial", type=float, default=0.0, help="GPUs per Train worker (fractional ok)")
    add("--trial-retries", type=int, default=2,
        help="restarts of a failed or preempted trial, each from its last checkpoint (Tune and Train failure "
             "configs)")
    add("--seeds", type=int, default=1,
        help="run every configuration with this many seeds (seeds shifted by 0..N-1, attack included); tables "
             "and plots show mean ± 95%% CI, Optuna is told the mean")
    add("--objective", nargs="+", default=None, metavar="METRIC:MODE",
        help="what Optuna optimises, e.g. val_der:max or val_acc:max val_asr:min (default: the script's; "
             "val_acc:max val_asr:min, or acc:max asr:min with --val-fraction 0)")
    add("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler: tpe, or nsga2 (NSGA-II)")
    add("--scheduler", choices=SCHEDULERS, default="none",
        help="early stopping on a single --objective: asha (Tune's ASHA, Optuna as the searcher), hyperband")
    add("--mlflow-uri", default=None, metavar="URI",
        help="also log every trial to MLflow, e.g. file:./mlruns (needs pip install 'bdray[tracking]')")
    add("--executor", choices=("train", "tune"), default="train",
        help="train: each trial is a Ray Train run; tune: run single-worker trials inside the Tune trial "
             "(much less start-up per trial; no DDP)")
    return parser


def num_samples(args, default: int = 6, smoke: int = 2) -> int:
    """``--num-samples`` when given (an explicit flag wins over the smoke preset), else the smoke
    test's or the script's default."""
    if args.num_samples is not None:
        return args.num_samples
    return smoke if args.smoke_test else default


def budget(args) -> str:
    """cpu or paper: which settings the sweep's methods take (``--budget``, auto by dataset)."""
    from bdray.presets import resolve_budget

    return resolve_budget(args.dataset, getattr(args, "budget", "auto"))


def backdoor_config(args, **overrides: Any) -> BackdoorConfig:
    """The attack to erase, from the flags and the data's preset (``bdray/presets.py``, chosen by
    image shape and budget; printed)."""
    from bdray.presets import describe, preset_for

    family, preset = preset_for(args.dataset, args.data_root, budget(args), args.model,
                                getattr(args, "image_size", None))
    print(f"{args.dataset} ({budget(args)} budget): {describe(family, preset, budget(args))}")
    params = {"trigger_size": args.trigger_size} if args.trigger_size else {}
    values = {**preset, "dataset": args.dataset, "data_root": args.data_root, "download": args.download,
              "attack": args.attack, "attack_params": params, "poison_rate": args.poison_rate,
              "target_class": args.target_class, "val_fraction": getattr(args, "val_fraction", 0.0),
              "image_size": getattr(args, "image_size", None)}
    if args.smoke_test:
        values.update(epochs=4, batch_size=64)
    values.update(overrides)
    return BackdoorConfig.from_dict(values)


def dataset_tag(dataset: str, data_root: str | None = None) -> str:
    """What a default sweep name says about the data: the dataset name, and for a file of one's own
    (``npz``, ``folder``) its stem plus a short digest of its resolved path, so two never share a sweep."""
    if dataset not in ("npz", "folder") or not data_root:
        return dataset
    import hashlib
    import os

    path = os.path.abspath(os.path.expanduser(data_root))
    base = os.path.basename(path)
    base = os.path.splitext(base)[0] if dataset == "npz" else base.split(".")[0]  # x.tar.gz -> x
    stem = "".join(c if c.isalnum() else "_" for c in base)[:24]
    return f"{dataset}_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:6]}"


def default_name(stem: str, args, dataset: str | None = None) -> str:
    """``args.name`` if given, else ``<stem>_<dataset tag>`` (``_smoke`` appended for smoke tests):
    smoke runs on different datasets never share a sweep folder or an Optuna study."""
    if getattr(args, "name", None):
        return args.name
    tag = dataset_tag(dataset or args.dataset, getattr(args, "data_root", None))
    return f"{stem}_{tag}" + ("_smoke" if getattr(args, "smoke_test", False) else "")


def objectives(texts) -> Tuple[Tuple[str, str], ...]:
    """``["der:max"]`` -> ``(("der", "max"),)``; a metric without ``:mode`` is maximised."""
    out = []
    for text in texts:
        metric, _, mode = text.partition(":")
        mode = mode or "max"
        if not metric or mode not in ("max", "min"):
            raise ConfigError("objective", text, "METRIC:max or METRIC:min, e.g. der:max")
        out.append((metric, mode))
    return tuple(out)


def resources(args) -> Dict[str, Any]:
    """The Sweep fields every script takes from the run flags (resources, search, seeds)."""
    out = {"max_concurrent": args.max_concurrent, "storage_path": args.storage_path, "seed": args.seed,
           "workers_per_trial": args.workers_per_trial, "cpus_per_worker": args.cpus_per_trial,
           "gpus_per_worker": args.gpus_per_trial, "executor": args.executor, "trial_retries": args.trial_retries,
           "seeds": getattr(args, "seeds", 1), "sampler": getattr(args, "sampler", "tpe"),
           "scheduler": getattr(args, "scheduler", "none"), "mlflow_uri": getattr(args, "mlflow_uri", None)}
    if getattr(args, "objective", None):
        out["objectives"] = objectives(args.objective)
    return out


CLEAN = "clean"  # the pseudo-attack of the comparison sweeps: the model trained on unpoisoned data


def threat_grid(attacks) -> Dict[str, Any]:
    """A grid over the attacks to defend against, for the comparison sweeps; ``clean`` among them
    is the model trained without poison (``poison_rate`` 0, its ASR measured with the first real
    attack's trigger): each defense's accuracy cost when there is nothing to remove."""
    from ray import tune

    real = [a for a in attacks if a != CLEAN]
    variants = [{"backdoor.attack": a} for a in real]
    if CLEAN in attacks:
        variants.append({"backdoor.attack": real[0] if real else "badnets", "backdoor.poison_rate": 0.0})
    return {VARIANT: tune.grid_search(variants)}
