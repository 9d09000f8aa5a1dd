"""Every defense against every attack in one sweep: the defense × attack table (``comparison.md``,
ACC/ASR per attack and defense, and ``attack_defense.md``) over the seed methods, their baselines
and issue 18's additions.  Each backdoored model is an attack artifact trained once and shared by
every defense; the training-time defenses (ABL, PT, CBD) train on the same poisoned data.

    python sweeps/benchmark.py                 # digits: 11 attacks × (14 defenses + none) = 165 trials (hours on 2 cores)
    python sweeps/benchmark.py --smoke-test    # 3 attacks × 4 defenses, tiny trainings
    python sweeps/benchmark.py --attacks badnets lf bpp --defenses no_defense clp dhbe abl
    python sweeps/benchmark.py --dataset npz --data-root ../shared/data/cifar10_partial.npz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.sweep.cli import add_common_args, backdoor_config, default_name, threat_grid  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402
from sweeps.training_defenses import defense_grid  # noqa: E402

ATTACKS = ["badnets", "blend", "sig", "wanet", "trojan", "clean_label", "input_aware", "lf", "bpp", "adaptive_blend",
           "refool"]
# no defense; post-training (clean data: FT, FP, NAD, NC, FST, ANP, I-BAU, RNP, SAU; data-free: DHBE, CLP); training-time (ABL, PT, CBD)
DEFENSES = ["no_defense", "finetune", "fineprune", "nad", "neural_cleanse", "fst", "anp", "ibau", "rnp", "sau", "dhbe", "clp",
            "abl", "pt", "cbd"]
SMOKE_ATTACKS = ["badnets", "bpp", "adaptive_blend"]
SMOKE_DEFENSES = ["no_defense", "finetune", "clp", "abl"]


def build_sweeps(args) -> list:
    attacks, defenses = args.attacks, args.defenses
    if args.smoke_test:
        attacks = attacks if args.attacks != ATTACKS else SMOKE_ATTACKS
        defenses = defenses if args.defenses != DEFENSES else SMOKE_DEFENSES
    return defense_grid(default_name("benchmark", args), defenses, threat_grid(attacks), args, backdoor_config(args))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    # SIG and Refool are clean-label: they poison target-class images only (~10 % of the digits)
    parser.set_defaults(poison_rate=0.08)
    parser.add_argument("--attacks", nargs="+", default=ATTACKS,
                        help="attacks; 'clean' adds the unpoisoned model (each defense's accuracy cost)")
    parser.add_argument("--defenses", nargs="+", default=DEFENSES)
    parser.add_argument("--epochs", type=int, default=None, help="DHBE epochs")
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["attack"])


if __name__ == "__main__":
    sys.exit(main())
