"""PT's sweep (PT paper §4–5, methods.md §3.4): freeze fraction × isolation ratio × the two
learning rates of the final training (descent on D_c, ascent on D_s), searched by a
multi-objective Optuna study (``acc`` max, ``asr`` min).  Every trial reports isolation with the
partially frozen M′ (``isolation_precision``) next to isolation with M_s
(``base_isolation_precision``).  M_s is the attack artifact: trained once, shared by all trials.

    python sweeps/pt_isolation.py                  # embedded digits, BadNets 10 %, 16 trials
    python sweeps/pt_isolation.py --smoke-test
    python sweeps/pt_isolation.py --dataset cifar10 --download --gpus-per-trial 0.25
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


def build_sweeps(args) -> list:
    from ray import tune

    name = default_name("pt_isolation", args)
    space = {"freeze_fraction": tune.choice(args.freeze_fractions), "isolation_ratio": tune.choice(args.ratios),
             "clean_lr": tune.loguniform(1e-4, 1e-2), "isolated_lr": tune.loguniform(1e-5, 1e-3)}
    return [Sweep(name=name, method="pt", base_config=defense_config("pt", args, backdoor_config(args)),
                  search_space=space, num_samples=num_samples(args), **resources(args))]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, default_samples=16)
    parser.add_argument("--freeze-fractions", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2], help="isolation ratios")
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["freeze_fraction", "isolation_ratio", "clean_lr", "isolated_lr",
                                               "isolation_precision", "base_isolation_precision"])


if __name__ == "__main__":
    sys.exit(main())
