"""``python -m bdray.claims --dataset npz --data-root X.npz --seeds 3 [--methods ...] [--budget cpu]``"""
from __future__ import annotations

import argparse
import sys

from bdray.config import ConfigError


def parse_args(argv=None):
    from bdray.data import DATASETS
    from bdray.models import MODELS

    p = argparse.ArgumentParser(prog="python -m bdray.claims", description=__doc__)
    p.add_argument("--dataset", default="digits", help=f"one of: {DATASETS.help()}")
    p.add_argument("--data-root", default=None, help="the .npz file for --dataset npz; a folder or archive of "
                                                     "train/<class>/* and test/<class>/* for --dataset folder")
    p.add_argument("--image-size", type=int, default=None, help="--dataset folder: resize every image to N×N")
    p.add_argument("--download", action="store_true")
    p.add_argument("--model", default=None, help=f"override the preset's model, one of: {MODELS.help()}")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (attack and defense)")
    p.add_argument("--seed-list", type=int, nargs="+", default=None, metavar="SEED",
                   help="run exactly these seeds instead of 0..N-1 (e.g. seed 1 alone on a second machine); "
                        "runs already under --out are reused, claims.md judges the seeds of this call")
    p.add_argument("--methods", nargs="*", default=None, help="defense labels (default: all)")
    p.add_argument("--budget", choices=("smoke", "cpu", "paper", "paper-cpu"), default="cpu",
                   help="paper-cpu: the papers' model (32×32 colour: WRN-16-1) and clean counts, CPU-sized epochs")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one run after another in this process; ray: each run a Ray task")
    p.add_argument("--attribute-dataset", default="digits_biased",
                   help="DBA's attribute data: digits_biased (embedded), celeba, utkface, npz")
    p.add_argument("--attribute-data-root", default=None, help="data folder, or the attribute .npz for npz")
    p.add_argument("--no-clean-cost", action="store_true", help="skip the defenses on a clean model")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    p.add_argument("--out", default=None, help="output folder (default ~/bdray_results/claims_<dataset>_<budget>)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from bdray.claims import run_claims
    from bdray.methods.attack.backdoor import BackdoorConfig
    from bdray.presets import describe, preset_for
    from bdray.sweep.cli import dataset_tag

    args = parse_args(argv)
    try:
        family, preset = preset_for(args.dataset, args.data_root, args.budget, args.model, args.image_size)
        print(f"{args.dataset} ({args.budget} budget): {describe(family, preset, args.budget)}")
        backdoor = BackdoorConfig(dataset=args.dataset, data_root=args.data_root, download=args.download,
                                  image_size=args.image_size, **preset)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or f"~/bdray_results/claims_{dataset_tag(args.dataset, args.data_root)}_{args.budget}"
    attributes = {"dataset": args.attribute_dataset, "data_root": args.attribute_data_root}
    try:
        from bdray.claims.runs import plan

        plan(backdoor, [0], args.budget, args.methods, False, attributes)  # every config valid before any run
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seeds = args.seed_list if args.seed_list else list(range(args.seeds))
    if any(seed < 0 for seed in seeds):
        print(f"error: --seed-list: seeds must be ≥ 0, got {seeds}", file=sys.stderr)
        return 2
    doc = run_claims(backdoor, seeds, args.budget, out, methods=args.methods,
                     executor=args.executor, clean_cost=not args.no_clean_cost, threads=args.threads,
                     attributes=attributes)
    from bdray.claims.harness import markdown

    print("\n" + markdown(doc["claims"], doc["settings"]))
    print(f"written: {out}/claims.md, {out}/claims.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
