"""Poisoned-sample detectors (Spectral Signatures, Activation Clustering, STRIP) against attacks ×
poisoning rates: every detector scores the poisoned training set of each attack artifact and is
judged against the recorded poison indices; ``analysis`` writes ``detection.md`` (TPR / FPR /
AUROC per attack, rate and detector; STRIP also as a test-time input filter).

    python sweeps/detection.py                       # digits: badnets, blend × 1 %, 5 %, 10 %
    python sweeps/detection.py --smoke-test
    python sweeps/detection.py --retrain-epochs 20   # also retrain without the flagged samples
    python sweeps/detection.py --dataset npz --data-root ../shared/data/cifar10_partial.npz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.presets import method_config  # noqa: E402
from bdray.sweep import Sweep  # noqa: E402
from bdray.sweep.cli import add_common_args, backdoor_config, budget, default_name, resources  # noqa: E402
from bdray.sweep.seeds import VARIANT  # noqa: E402
from sweeps.run import cli_errors, run_all  # noqa: E402

DETECTORS = ["spectral_signatures", "activation_clustering", "strip"]
ATTACKS = ["badnets", "blend"]
RATES = [0.01, 0.05, 0.1]


def build_sweeps(args) -> list:
    from ray import tune

    attacks, rates = args.attacks, args.poison_rates
    if args.smoke_test:
        attacks, rates = attacks[:1], rates[:1]
    variants = [{"backdoor.attack": a, "backdoor.poison_rate": r} for a in attacks for r in rates]
    backdoor = backdoor_config(args)
    name = default_name("detection", args)
    sweeps = []
    for detector in args.detectors:
        overrides = {"retrain_epochs": args.retrain_epochs}
        if detector == "strip" and args.strip_perturbations:
            overrides["num_perturbations"] = args.strip_perturbations
        cfg = method_config(detector, backdoor, budget(args), smoke=args.smoke_test, **overrides)
        sweeps.append(Sweep(name=name, method=detector, base_config=cfg, search_space={VARIANT: tune.grid_search(variants)},
                            search="grid", num_samples=1, objectives=(("detection_auroc", "max"),), **resources(args)))
    return sweeps


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--detectors", nargs="+", default=DETECTORS)
    parser.add_argument("--attacks", nargs="+", default=ATTACKS)
    parser.add_argument("--poison-rates", type=float, nargs="+", default=RATES)
    parser.add_argument("--retrain-epochs", type=int, default=0,
                        help="retrain without the flagged samples for this many epochs (0: detection only)")
    parser.add_argument("--strip-perturbations", type=int, default=None, help="STRIP's N (default 100, the paper's; --smoke-test 8)")
    return parser.parse_args(argv)


@cli_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_all(build_sweeps(args), params=["attack", "backdoor_poison_rate"])


if __name__ == "__main__":
    sys.exit(main())
