"""The training-time defenses side by side (PT paper, Table 2 shape): no defense, ABL, PT and CBD
against BadNets, Blend, SIG and WaNet.  Each backdoored model is an artifact trained once; PT
starts from it (M_s), ABL and CBD train on the same poisoned data from scratch.

    python sweeps/defense_comparison.py                  # digits: 4 attacks × 4 rows = 16 trials
    python sweeps/defense_comparison.py --smoke-test
    python sweeps/defense_comparison.py --attacks badnets blend clean   # + each defense's cost on a clean model
    python sweeps/defense_comparison.py --dataset cifar10 --download --gpus-per-trial 0.25
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.sweep.cli import add_common_args, backdoor_config, default_name, threat_grid  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402
from sweeps.training_defenses import TRAINING_DEFENSES, defense_grid  # noqa: E402

ATTACKS = ["badnets", "blend", "sig", "wanet"]


def build_sweeps(args) -> list:
    name = default_name("defense_comparison", args)
    backdoor = backdoor_config(args)
    space = threat_grid(args.attacks)
    return defense_grid(name, args.defenses, space, args, backdoor)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    # SIG is clean-label: it can poison at most the target class's share (~10 % of the digits)
    parser.set_defaults(poison_rate=0.08)
    parser.add_argument("--attacks", nargs="+", default=ATTACKS,
                        help="attacks to defend against; 'clean' adds the unpoisoned model (each defense's cost)")
    parser.add_argument("--defenses", nargs="+", default=list(TRAINING_DEFENSES))
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["attack"])


if __name__ == "__main__":
    sys.exit(main())
