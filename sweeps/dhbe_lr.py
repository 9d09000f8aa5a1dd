"""Sweep DHBE's student learning rate against a BadNets backdoor (DHBE paper, Figs. 3 and 10).

Trains the backdoored model once (a content-addressed artifact), then runs a Ray Tune + Optuna
(seeded TPE, multi-objective: acc max, asr min) study of DHBE over ``student_lr``, each trial a Ray
Train run.  ``--compare`` also runs the blind baselines (fine-tuning, fine-pruning, NAD) on a grid:
lr spaced linearly, five clean subsets per curve, 4 % and 1 % clean data.  Writes
``trials.parquet``/``epochs.parquet`` and a report folder (trade-off PNGs, Markdown tables).

    python sweeps/dhbe_lr.py                       # embedded digits data, CPU, ~5 minutes
    python sweeps/dhbe_lr.py --smoke-test          # about a minute
    python sweeps/dhbe_lr.py --compare             # + 150 baseline trials (~15 minutes on 2 cores)
    python sweeps/dhbe_lr.py --dataset cifar10 --download --gpus-per-trial 0.5 --compare
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# Run from a checkout (or a `ray job submit --working-dir .` copy) without installing bdray.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.methods.erasing.dhbe import DHBEConfig  # noqa: E402
from bdray.presets import method_config  # noqa: E402
from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_common_args, backdoor_config, budget, resources, default_name, num_samples  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402

BLIND_BASELINES = ("finetune", "fineprune", "nad")
# lr range of the blind baselines: the paper's 0.002–0.02 (CIFAR-10, 2000 samples per epoch); the
# embedded digits train on 500 samples per epoch and need a larger lr before the backdoor moves.
COMPARE_LR = {"cpu": (0.01, 0.08), "paper": (0.002, 0.02)}  # by budget (cpu: 500 samples per epoch)


def dhbe_base(args, backdoor) -> DHBEConfig:
    explicit = {"epochs": args.epochs} if args.epochs else {}
    return method_config("dhbe", backdoor, budget(args), smoke=args.smoke_test, **explicit)


def build_sweeps(args) -> list:
    from ray import tune

    backdoor = backdoor_config(args)
    name = default_name("dhbe_lr", args)
    res = resources(args)
    sweeps = [Sweep(name=name, method="dhbe", base_config=dhbe_base(args, backdoor),
                    search_space={"student_lr": tune.loguniform(args.lr_min, args.lr_max)},
                    num_samples=num_samples(args), **res)]
    if args.compare:
        default_lo, default_hi = COMPARE_LR.get(budget(args), COMPARE_LR["cpu"])
        lo = default_lo if args.compare_lr_min is None else args.compare_lr_min
        hi = default_hi if args.compare_lr_max is None else args.compare_lr_max
        small = args.smoke_test  # smoke: 2 lrs, 1 subset, 1 fraction unless given explicitly
        n_lr = args.compare_lrs or (2 if small else 5)
        n_subsets = args.subsets or (1 if small else 5)
        fractions = args.clean_fractions or ([0.04] if small else [0.04, 0.01])
        space = {"lr": tune.grid_search([float(v) for v in np.linspace(lo, hi, n_lr)]),
                 "subset_seed": tune.grid_search(list(range(n_subsets))),
                 "clean_fraction": tune.grid_search(list(fractions))}
        for method in args.baselines:
            cfg = method_config(method, backdoor, budget(args), smoke=args.smoke_test)
            sweeps.append(Sweep(name=name, method=method, base_config=cfg, search_space=space, search="grid",
                                num_samples=1, **res))
    return sweeps


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--epochs", type=int, default=None, help="DHBE epochs (default: the preset's)")
    parser.add_argument("--lr-min", type=float, default=0.01)
    parser.add_argument("--lr-max", type=float, default=0.2)
    parser.add_argument("--compare", action="store_true", help="also run the blind baselines on an lr grid")
    parser.add_argument("--compare-lr-min", type=float, default=None)
    parser.add_argument("--compare-lr-max", type=float, default=None)
    parser.add_argument("--baselines", nargs="+", default=list(BLIND_BASELINES), help="baselines of --compare")
    parser.add_argument("--compare-lrs", type=int, default=None, help="lr values per baseline curve (5)")
    parser.add_argument("--subsets", type=int, default=None, help="clean subsets per curve (5)")
    parser.add_argument("--clean-fractions", type=float, nargs="+", default=None, help="(0.04 0.01)")
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)

    return run_all(build_sweeps(args), params=["student_lr", "lr", "clean_fraction", "subset_seed"])


if __name__ == "__main__":
    sys.exit(main())
