"""Sweep DHBE's regularisation weight λ (DHBE paper, Fig. 8): a grid from 0 to 1, log-spaced,
covering the paper's stable range 0.01–0.2.  λ = 0 keeps the trigger generator (the paper's
"DHBE with λ = 0", not DFAD).  Reports acc, asr and the activation differences per λ.

    python sweeps/dhbe_lambda.py                   # embedded digits, 8 trials, ~7 minutes on 2 cores
    python sweeps/dhbe_lambda.py --smoke-test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_common_args, backdoor_config, resources, default_name  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402
from sweeps.dhbe_lr import dhbe_base  # noqa: E402

LAMBDAS = [0.0, 0.001, 0.01, 0.03, 0.1, 0.2, 0.5, 1.0]


def build_sweeps(args) -> list:
    from ray import tune

    lambdas = [0.0, 0.1] if args.smoke_test else args.lambdas
    name = default_name("dhbe_lambda", args)
    return [Sweep(name=name, method="dhbe", base_config=dhbe_base(args, backdoor_config(args)),
                  search_space={"lambda_abr": tune.grid_search(lambdas)}, search="grid", num_samples=1,
                  **resources(args))]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lambdas", type=float, nargs="+", default=LAMBDAS)
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["lambda_abr"])


if __name__ == "__main__":
    sys.exit(main())
