"""DBA's toy boundary study (DBA paper §2.2, Figs. 4–6): bias rate × {all data, undersampling,
pseudo-deletion} × seeds on the 2-D four-block data; Classification Boundary Error per trial and
the boundary plots, rebuilt from the Parquet.

    python sweeps/dba_toy.py                  # 5 bias rates × 3 strategies × 5 seeds = 75 small trials
    python sweeps/dba_toy.py --smoke-test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.methods.fairness.dba_toy import STRATEGIES, DBAToyConfig  # noqa: E402
from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_run_args, resources  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402

BIAS_RATES = [0.5, 0.6, 0.7, 0.8, 0.9]


def build_sweeps(args) -> list:
    from ray import tune

    rates = [0.8] if args.smoke_test else args.bias_rates
    base = DBAToyConfig(epochs=50) if args.smoke_test else DBAToyConfig()
    name = args.name or ("dba_toy_smoke" if args.smoke_test else "dba_toy")
    space = {"bias_rate": tune.grid_search(rates), "strategy": tune.grid_search(list(STRATEGIES))}
    res = {**resources(args), "seeds": 1 if args.smoke_test else args.seeds}  # seed replicas: bdray.sweep.seeds
    return [Sweep(name=name, method="dba_toy", base_config=base, search_space=space, search="grid", num_samples=1,
                  **res)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.set_defaults(executor="tune")  # 75 one-second trials: no Ray Train start-up per trial
    parser.add_argument("--bias-rates", type=float, nargs="+", default=BIAS_RATES)
    parser.set_defaults(seeds=5)  # --seeds: every cell of the grid with seeds 0..N-1
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["bias_rate", "strategy", "seed", "boundary_error"])


if __name__ == "__main__":
    sys.exit(main())
