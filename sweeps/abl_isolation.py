"""ABL's isolation sweep (ABL paper §5, methods.md §3.3): isolation ratio × γ × T_te (isolation
epochs), searched by a multi-objective Optuna study (``acc`` max, ``asr`` min).  Every trial
reports ``isolation_precision`` / ``isolation_recall`` against the recorded poison indices; the
report has the precision/recall-vs-ratio plot and the Pareto front.

    python sweeps/abl_isolation.py                 # embedded digits, BadNets 10 %, 16 trials, ~3 minutes
    python sweeps/abl_isolation.py --smoke-test
    python sweeps/abl_isolation.py --dataset cifar10 --download --model wrn_16_1 --gpus-per-trial 0.25
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_common_args, backdoor_config, resources, default_name, num_samples  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402
from sweeps.training_defenses import defense_config  # noqa: E402

RATIOS = [0.005, 0.01, 0.05, 0.1]
GAMMAS = [0.0, 0.5, 1.0, 1.5, 2.0]


def build_sweeps(args) -> list:
    from ray import tune

    name = default_name("abl_isolation", args)
    space = {"isolation_ratio": tune.choice(args.ratios), "gamma": tune.choice(args.gammas),
             "isolation_epochs": tune.choice(args.isolation_epochs)}
    if args.unlearn_lrs:
        space["unlearn_lr"] = tune.choice(args.unlearn_lrs)
    return [Sweep(name=name, method="abl", base_config=defense_config("abl", args, backdoor_config(args)),
                  search_space=space, num_samples=num_samples(args), **resources(args))]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, default_samples=16)
    parser.add_argument("--ratios", type=float, nargs="+", default=RATIOS, help="isolation ratios")
    parser.add_argument("--gammas", type=float, nargs="+", default=GAMMAS, help="LGA γ values")
    parser.add_argument("--isolation-epochs", type=int, nargs="+", default=[5, 10], help="T_te values (paper: 10 20)")
    parser.add_argument("--unlearn-lrs", type=float, nargs="+", default=None, help="e.g. 1e-4 5e-4")
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["isolation_ratio", "gamma", "isolation_epochs", "unlearn_lr",
                                               "isolation_precision", "isolation_recall"])


if __name__ == "__main__":
    sys.exit(main())
