"""CBD's robustness table (CBD paper, Table 2): poisoning rate {1, 5, 20, 50} % × attacks
{BadNets, Blend, WaNet, Trojan} × {no defense, CBD}.  Every backdoored model is an artifact,
trained once (in parallel, before the trials) and reported as the "None" row; CBD trains on the
same poisoned data.  ``--lambda-sweep`` adds the sweep of the mutual-information term's weight λ.

    python sweeps/cbd_poison_rate.py                     # digits: 16 cells × 2 rows = 32 trials
    python sweeps/cbd_poison_rate.py --smoke-test        # same grid, tiny trainings
    python sweeps/cbd_poison_rate.py --lambda-sweep      # + CBD with the MI term, λ in LAMBDAS
    python sweeps/cbd_poison_rate.py --dataset cifar10 --download --model wrn_16_1 --gpus-per-trial 0.25
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_common_args, backdoor_config, resources, default_name  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402
from sweeps.training_defenses import defense_config  # noqa: E402

RATES = [0.01, 0.05, 0.2, 0.5]
ATTACKS = ["badnets", "blend", "wanet", "trojan"]
LAMBDAS = [0.0, 0.001, 0.01, 0.1, 1.0]


def build_sweeps(args) -> list:
    from ray import tune

    name = default_name("cbd_poison_rate", args)
    backdoor = backdoor_config(args)
    space = {"backdoor.poison_rate": tune.grid_search(args.rates), "backdoor.attack": tune.grid_search(args.attacks)}
    res = resources(args)
    sweeps = [Sweep(name=name, method=m, base_config=defense_config(m, args, backdoor), search_space=space,
                    search="grid", num_samples=1, **res) for m in ("no_defense", "cbd")]
    if args.lambda_sweep:
        lambdas = LAMBDAS[1:3] if args.smoke_test else args.lambdas
        sweeps.append(Sweep(name=f"{name}_lambda", method="cbd",
                            base_config=defense_config("cbd", args, backdoor, mutual_information=True),
                            search_space={"mi_weight": tune.grid_search(lambdas)}, search="grid", num_samples=1,
                            **res))
    return sweeps


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--rates", type=float, nargs="+", default=RATES, help="poisoning rates")
    parser.add_argument("--attacks", nargs="+", default=ATTACKS)
    parser.add_argument("--lambda-sweep", action="store_true", help="also sweep the MI term's weight λ")
    parser.add_argument("--lambdas", type=float, nargs="+", default=LAMBDAS)
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    sweeps = build_sweeps(args)
    for sweep in sweeps:  # every sweep is checked before any Ray work starts
        sweep.validate()
    code = run_all(sweeps[:2], params=["backdoor_poison_rate", "attack"])
    if len(sweeps) > 2:
        code = run_all(sweeps[2:], params=["mi_weight"]) or code
    return code


if __name__ == "__main__":
    sys.exit(main())
