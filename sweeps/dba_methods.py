"""DBA against its baselines (DBA paper Tables 1–6, 8): strategy × target attribute × seed, plus
optionally every target at once (the multi-attribute setting).

    python sweeps/dba_methods.py                           # embedded biased digits: 5 × 3 targets × 3 seeds
    python sweeps/dba_methods.py --multi-attribute          # + normal and DBA on all targets at once
    python sweeps/dba_methods.py --dataset celeba --download --bias Male --gpus-per-trial 0.25
    python sweeps/dba_methods.py --dataset utkface --data-root ~/data    # Table 5
    python sweeps/dba_methods.py --smoke-test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.methods.fairness.debias_strategies import STRATEGIES  # noqa: E402
from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_run_args, resources, default_name  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402
from sweeps.debiasing import add_data_args, all_targets, base_config  # noqa: E402


def build_sweeps(args) -> list:
    from ray import tune

    base = base_config(args)
    targets = args.targets or all_targets(base.dataset, base.bias_attribute, base.data_root)
    multi_targets = targets[:2] if args.smoke_test else targets
    if args.smoke_test:
        targets = targets[:1]
    res = {**resources(args), "seeds": 1 if args.smoke_test else args.seeds}  # seed replicas: bdray.sweep.seeds
    name = default_name("dba_methods", args, base.dataset)
    space = {"strategy": tune.grid_search(list(args.strategies)),
             "targets": tune.grid_search([[t] for t in targets])}
    sweeps = [Sweep(name=name, method="debias", base_config=base, search_space=space, search="grid",
                    num_samples=1, **res)]
    if args.multi_attribute and len(multi_targets) > 1:
        multi = {"strategy": tune.grid_search(["normal", "dba"])}
        # same name, so the same folder and Parquet: one report holds Tables 3-6 and 8
        sweeps.append(Sweep(name=name, method="debias", base_config=base.replace(targets=tuple(multi_targets)),
                            search_space=multi, search="grid", num_samples=1, **res))
    return sweeps


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(parser)
    add_run_args(parser)
    parser.set_defaults(executor="tune")  # many short single-worker trials: no Ray Train start-up per trial
    parser.add_argument("--targets", nargs="+", default=None, help="target attributes (default: the paper's set)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.set_defaults(seeds=3)  # --seeds: every cell of the grid with seeds 0..N-1
    parser.add_argument("--multi-attribute", action="store_true",
                        help="also train normal and DBA on all targets at once (one head per task)")
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["strategy", "targets", "seed", "opp", "eacc"])


if __name__ == "__main__":
    sys.exit(main())
