"""Sweep overhead: N short trials through Ray Tune + Optuna vs the same N runs in-process.

1. ``run_sweep`` of the ``backdoor`` method on the embedded digits, Optuna choosing ``lr``, one
   trial at a time (1 CPU each, ``executor="tune"``: the loop runs inside reused Tune actors);
2. the very configurations Optuna chose, run back to back in this process with ``run_local`` on
   one thread (what each trial gets);
3. the sweep again with ``--concurrency`` trials at once.

Per-trial overhead = (sweep wall − in-process wall) / N, both at concurrency 1; the concurrency
speed-up = in-process wall / concurrent sweep wall.  ``ray.init`` is timed apart (once per
cluster, not per trial).  Target: overhead ≤ 2 s per trial on the 2-core dev machine.
``--executors tune train`` also times Ray Train trials (a TorchTrainer per trial).

    python benchmarks/sweep_overhead.py
    python benchmarks/sweep_overhead.py --trials 16 --epochs 3 --executors tune train
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import print_table, verdict, write_result  # noqa: E402
from bdray.methods.attack.backdoor import BackdoorConfig  # noqa: E402


def sweep(name: str, base: BackdoorConfig, trials: int, concurrency: int, executor: str, storage: str):
    from ray import tune

    from bdray.sweep.runner import Sweep, run_sweep

    spec = Sweep(name=name, method="backdoor", base_config=base, search_space={"lr": tune.loguniform(0.01, 0.2)},
                 objectives=(("acc", "max"),), num_samples=trials, max_concurrent=concurrency,
                 storage_path=storage, executor=executor, cpus_per_worker=1.0, verbose=False)
    t0 = time.perf_counter()
    result = run_sweep(spec)
    wall = time.perf_counter() - t0
    failed = result.trials[result.trials["status"] != "TERMINATED"]
    if len(failed):
        raise RuntimeError(f"{len(failed)} trials of {name} failed: {failed['error'].tolist()}")
    return wall, result.trials


def in_process(base: BackdoorConfig, lrs, artifacts: str) -> float:
    from bdray.runtime import run_local

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a 1-CPU trial gets
    try:
        t0 = time.perf_counter()
        for lr in lrs:
            run_local("backdoor", base.replace(lr=float(lr)), device="cpu", artifact_root=artifacts, verbose=False)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=3, help="epochs of each trial (embedded digits, small_cnn)")
    p.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    p.add_argument("--executors", nargs="+", choices=("tune", "train"), default=["tune"])
    p.add_argument("--smoke-test", action="store_true", help="3 trials of 1 epoch")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/sweep_overhead.json)")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.trials, args.epochs = 3, 1
    import ray

    base = BackdoorConfig(epochs=args.epochs)
    rows, targets = [], []
    with tempfile.TemporaryDirectory() as storage:
        t0 = time.perf_counter()
        if not ray.is_initialized():
            ray.init(num_cpus=max(args.concurrency, 1), include_dashboard=False, log_to_driver=False)
        ray_init_s = time.perf_counter() - t0
        print(f"ray.init: {ray_init_s:.1f} s; {args.trials} trials of {args.epochs} epochs", flush=True)
        for executor in args.executors:
            serial_wall, trials = sweep(f"overhead-{executor}-1", base, args.trials, 1, executor, storage)
            lrs = trials["lr"].tolist()
            local_wall = in_process(base, lrs, f"{storage}/artifacts")
            conc_wall, _ = sweep(f"overhead-{executor}-{args.concurrency}", base, args.trials, args.concurrency,
                                 executor, storage)
            overhead = (serial_wall - local_wall) / args.trials
            rows.append({"executor": executor, "trials": args.trials, "in_process_s": local_wall,
                         "sweep_1_s": serial_wall, f"sweep_{args.concurrency}_s": conc_wall,
                         "overhead_per_trial_s": overhead, "concurrency_speedup": local_wall / conc_wall})
            print(f"{executor}: in-process {local_wall:.1f} s, sweep x1 {serial_wall:.1f} s, "
                  f"sweep x{args.concurrency} {conc_wall:.1f} s", flush=True)
            if executor == "tune":
                targets.append(verdict("Tune+Optuna overhead per trial, s (executor tune)", overhead, 2.0,
                                       higher_is_better=False))
    print()
    print_table(rows)
    write_result("sweep_overhead", rows, {"ray_init_s": ray_init_s, "epochs_per_trial": args.epochs,
                                          "targets": targets}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
