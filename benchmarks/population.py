"""Population mode: K ``backdoor`` members trained in one ``vmap``-ed trial vs K separate runs.

For each K, one ``backdoor_population`` run (K learning rates, one stacked model) and the K
matching ``backdoor`` runs back to back, in this process on the same device.  Throughput is
member-images trained per second of training (the loops' own ``train_time_s``, so data loading
and evaluation are left out on both sides); the speed-up is population / separate.  Also reports
how far member k's final accuracy is from its separate run's (float rounding only).

    python benchmarks/population.py                           # embedded digits, small_cnn
    python benchmarks/population.py --sizes 1 4 16 --device cuda
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import print_table, write_result  # noqa: E402
from bdray.methods.attack.backdoor import BackdoorConfig  # noqa: E402
from bdray.methods.attack.population import PopulationConfig  # noqa: E402
from bdray.runtime import run_local  # noqa: E402


def train_seconds(history) -> float:
    return float(sum(row["train_time_s"] for row in history))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8], help="population sizes K")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke-test", action="store_true", help="K = 1, 2 and one epoch")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/population.json)")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.sizes, args.epochs = [1, 2], 1
    member = BackdoorConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size)
    rows = []
    for k in args.sizes:
        lrs = tuple(float(x) for x in np.geomspace(0.01, 0.1, k)) if k > 1 else (member.lr,)
        cfg = PopulationConfig(member=member, lrs=lrs)
        pop = run_local("backdoor_population", cfg, device=args.device, verbose=False)
        pop_s = train_seconds(pop.history)
        sep_s, gaps = 0.0, []
        for i in range(k):
            single = run_local("backdoor", cfg.member_config(i), device=args.device, verbose=False)
            sep_s += train_seconds(single.history)
            gaps.append(abs(pop.history[-1][f"member{i}_acc"] - single.metrics["acc"]))
        images = pop.history[-1]["train_images_per_s"] * pop_s  # member-images trained
        rows.append({"members": k, "population_train_s": pop_s, "separate_train_s": sep_s,
                     "population_images_per_s": images / pop_s, "separate_images_per_s": images / sep_s,
                     "speedup": sep_s / pop_s, "max_acc_gap": max(gaps)})
        print(f"K={k}: population {pop_s:.2f} s, separate {sep_s:.2f} s -> x{sep_s / pop_s:.2f}", flush=True)
    print()
    print_table(rows)
    write_result("population", rows, {"device": args.device, "model": args.model, "epochs": args.epochs}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
