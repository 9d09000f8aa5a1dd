"""Sweep CLP's threshold u (CLP paper, Fig. 5): channels whose Lipschitz bound exceeds mean + u·std
of their layer are pruned, with no data; smaller u prunes more.  Against BadNets and Blend by
default; reports acc, asr and the pruned share per u.

    python sweeps/clp_threshold.py                    # digits: 2 attacks × 9 values of u, seconds each
    python sweeps/clp_threshold.py --smoke-test
    python sweeps/clp_threshold.py --dataset npz --data-root ../shared/data/cifar10_partial.npz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.presets import method_config  # noqa: E402
from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_common_args, backdoor_config, budget, default_name, resources, threat_grid  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402

THRESHOLDS = [0.0, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 10.0]
ATTACKS = ["badnets", "blend"]


def build_sweeps(args) -> list:
    from ray import tune

    thresholds, attacks = args.u, args.attacks
    if args.smoke_test:
        thresholds, attacks = [2.0, 3.0], attacks[:1]
    cfg = method_config("clp", backdoor_config(args), budget(args), smoke=args.smoke_test)
    space = {**threat_grid(attacks), "u": tune.grid_search(thresholds)}
    return [Sweep(name=default_name("clp_threshold", args), method="clp", base_config=cfg, search_space=space,
                  search="grid", num_samples=1, **resources(args))]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--u", type=float, nargs="+", default=THRESHOLDS, help="CLP thresholds to sweep")
    parser.add_argument("--attacks", nargs="+", default=ATTACKS)
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["attack", "u"])


if __name__ == "__main__":
    sys.exit(main())
