"""Actual trigger size × trigger-generator size (DHBE paper, Fig. 11): one backdoored model per
trigger size (trained once each, as artifacts), DHBE with each generator size.

    python sweeps/dhbe_trigger_size.py             # digits: sizes {2,3,4} × {2,3,5}, 9 trials
    python sweeps/dhbe_trigger_size.py --smoke-test
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

SIZES = {"digits": ([2, 3, 4], [2, 3, 5]), "default": ([3, 4, 5], [3, 5, 7])}


def build_sweeps(args) -> list:
    from ray import tune

    trigger_sizes, gen_sizes = SIZES.get(args.dataset, SIZES["default"])
    trigger_sizes = args.trigger_sizes or trigger_sizes
    gen_sizes = args.generator_sizes or gen_sizes
    if args.smoke_test:
        trigger_sizes, gen_sizes = trigger_sizes[:2], gen_sizes[:1]
    name = default_name("dhbe_trigger_size", args)
    space = {"backdoor.attack_params.trigger_size": tune.grid_search(trigger_sizes),
             "trigger_gen_size": tune.grid_search(gen_sizes)}
    return [Sweep(name=name, method="dhbe", base_config=dhbe_base(args, backdoor_config(args)), search_space=space,
                  search="grid", num_samples=1, **resources(args))]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--trigger-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--generator-sizes", type=int, nargs="+", default=None)
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["backdoor_attack_trigger_size", "trigger_gen_size"])


if __name__ == "__main__":
    sys.exit(main())
