"""The attack × defense grid of the DHBE paper's Tables 3 and 6: BadNets, clean-label and Trojan
attacks at three trigger sizes each, against every defense (fine-tuning, fine-pruning, NAD,
Neural Cleanse, DHBE, and CLP -- data-free like DHBE).  Every backdoored model is trained once (in parallel, before the trials)
and reused by every defense.

    python sweeps/attack_defense.py                # digits: 9 attacks × 6 defenses = 54 trials
    python sweeps/attack_defense.py --smoke-test   # 2 attacks × 6 defenses, tiny trainings
    python sweeps/attack_defense.py --dataset cifar10 --download --gpus-per-trial 0.25
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
from sweeps.dhbe_lr import dhbe_base  # noqa: E402

ATTACKS = ["badnets", "clean_label", "trojan"]
SIZES = {"digits": [2, 3, 4], "default": [3, 4, 5]}
DEFENSES = ["finetune", "fineprune", "nad", "neural_cleanse", "dhbe", "clp", "anp", "ibau", "rnp", "sau"]  # CLP: data-free, beside DHBE


def build_sweeps(args) -> list:
    from ray import tune

    attacks, sizes, defenses = args.attacks, args.sizes or SIZES.get(args.dataset, SIZES["default"]), args.defenses
    if args.smoke_test:
        real = [a for a in attacks if a != "clean"]
        attacks, sizes = real[:1] + real[2:3] + [a for a in attacks if a == "clean"], sizes[1:2]
    backdoor = backdoor_config(args)
    name = default_name("attack_defense", args)
    space = {**threat_grid(attacks), "backdoor.attack_params.trigger_size": tune.grid_search(sizes)}
    sweeps = []
    for defense in defenses:
        if defense == "dhbe":
            cfg = dhbe_base(args, backdoor)
        else:
            cfg = method_config(defense, backdoor, budget(args), smoke=args.smoke_test,
                                **({"lr": args.lr} if args.lr else {}))
        sweeps.append(Sweep(name=name, method=defense, base_config=cfg, search_space=space, search="grid",
                            num_samples=1, **resources(args)))
    return sweeps


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.set_defaults(poison_rate=0.08)  # clean-label poisons target-class images: at most ~10 % of digits
    parser.add_argument("--attacks", nargs="+", default=ATTACKS,
                        help="attacks to erase; 'clean' adds the unpoisoned model (each defense's accuracy cost)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="trigger sizes")
    parser.add_argument("--defenses", nargs="+", default=DEFENSES)
    parser.add_argument("--lr", type=float, default=None, help="lr of the clean-data baselines")
    parser.add_argument("--epochs", type=int, default=None, help="DHBE epochs")
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["attack", "backdoor_attack_trigger_size"])


if __name__ == "__main__":
    sys.exit(main())
