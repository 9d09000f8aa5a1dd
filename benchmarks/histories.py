"""Per-epoch histories of every method at small budgets, to check that a change of the training
code changed nothing it should not (a refactor: the same metrics, epoch by epoch, bit for bit).

    python benchmarks/histories.py dump before.json            # on the old code (e.g. after git stash)
    python benchmarks/histories.py dump after.json --set channels_last=off
    python benchmarks/histories.py compare before.json after.json

``dump`` runs each config of ``RUNS`` in-process on the CPU with one torch thread (the same seed,
same thread count: identical runs) and writes every report.  ``--set key=value`` applies to every
config that has the field.  ``compare`` lists, per run, each column that differs (timing columns
ignored; loss columns within 1e-5 relative, as they are sums whose order may change); columns
only one side has are listed once as "new" / "gone".
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CIFAR = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_partial.npz")
SMALL = {"epochs": 6}
RUNS = {
    "backdoor": ("backdoor", {"epochs": 3}),
    "backdoor_blend_b50": ("backdoor", {"epochs": 2, "attack": "blend", "batch_size": 50}),
    "backdoor_cifar": ("backdoor", {"epochs": 1, "dataset": "npz", "data_root": CIFAR}),
    "abl": ("abl", {"backdoor": SMALL, "isolation_epochs": 3, "clean_epochs": 2, "unlearn_epochs": 3}),
    "abl_nostop": ("abl", {"backdoor": SMALL, "isolation_epochs": 2, "clean_epochs": 1, "unlearn_epochs": 2,
                           "unlearn_stop_accuracy": None}),
    "cbd": ("cbd", {"backdoor": SMALL, "fb_epochs": 2, "epochs": 3}),
    "pt": ("pt", {"backdoor": SMALL, "partial_epochs": 2, "epochs": 2}),
    "finetune": ("finetune", {"backdoor": SMALL, "epochs": 3}),
    "fineprune": ("fineprune", {"backdoor": SMALL, "epochs": 3}),
    "nad": ("nad", {"backdoor": SMALL, "epochs": 3, "teacher_epochs": 2}),
    "dhbe": ("dhbe", {"backdoor": SMALL, "epochs": 3, "iters_per_epoch": 4}),
    "dfad": ("dhbe", {"backdoor": SMALL, "epochs": 2, "iters_per_epoch": 4, "lambda_abr": 0.0,
                      "trigger_generator": False}),
    "dhbe_batch_position": ("dhbe", {"backdoor": SMALL, "epochs": 2, "iters_per_epoch": 3,
                                     "trigger_position": "batch", "bn_prior_weight": 0.0}),
    "population": ("backdoor_population", {"member": {"epochs": 3}, "lrs": [0.02, 0.05, 0.1]}),
    "debias_dba_implicit": ("debias", {"strategy": "dba", "epochs": 3, "trigger_channel": "implicit"}),
    "debias_adversarial": ("debias", {"strategy": "adversarial", "epochs": 3}),
    "debias_reweighting": ("debias", {"strategy": "reweighting", "epochs": 3}),
    "debias_dba_constant_crop": ("debias", {"strategy": "dba", "epochs": 2, "lr_schedule": "constant",
                                            "crop_padding": 2}),
}
TIMING = {"epoch_time_s", "time_total_s", "reported_at", "train_time_s", "train_images_per_s", "compile_time_s",
          "train_steps_per_s"}
LOSSES = ("loss", "mi_estimate", "mean_weight")


def dump(out: str, settings: dict, only: list) -> None:
    import dataclasses

    import torch

    from bdray.methods import get_method
    from bdray.runtime import run_local

    torch.set_num_threads(1)
    histories = {}
    for name, (method, cfg) in RUNS.items():
        if only and name not in only:
            continue
        if "data_root" in cfg and not Path(cfg["data_root"]).exists():
            print(f"{name}: skipped ({cfg['data_root']} not found)")
            continue
        fields = {f.name for f in dataclasses.fields(get_method(method).config_cls)}
        result = run_local(method, {**cfg, **{k: v for k, v in settings.items() if k in fields}}, device="cpu",
                           verbose=False)
        histories[name] = result.history
        print(f"{name}: {len(result.history)} epochs, acc {result.metrics.get('acc', math.nan):.4f}, "
              f"{result.wall_time_s:.1f} s", flush=True)
    Path(out).write_text(json.dumps(histories, default=str))


def _same(a, b, key: str) -> bool:
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        if any(t in key for t in LOSSES):
            return abs(a - b) <= 1e-5 * max(1.0, abs(a))
    return False


def compare(path_a: str, path_b: str) -> int:
    a, b = json.loads(Path(path_a).read_text()), json.loads(Path(path_b).read_text())
    changed = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {'the second' if name in b else 'the first'}")
            continue
        ha, hb = a[name], b[name]
        notes = [] if len(ha) == len(hb) else [f"{len(ha)} vs {len(hb)} epochs"]
        keys_a = set().union(*ha) - TIMING if ha else set()
        keys_b = set().union(*hb) - TIMING if hb else set()
        if keys_b - keys_a:
            notes.append("new: " + ", ".join(sorted(keys_b - keys_a)))
        if keys_a - keys_b:
            notes.append("gone: " + ", ".join(sorted(keys_a - keys_b)))
        diffs = [f"epoch {i + 1} {k}: {ra[k]} -> {rb[k]}" for i, (ra, rb) in enumerate(zip(ha, hb))
                 for k in sorted(keys_a & keys_b) if k in ra and k in rb and not _same(ra[k], rb[k], k)]
        changed += bool(diffs)
        print(f"{name}: " + ("identical" if not diffs else f"{len(diffs)} values differ") +
              "".join(f"; {n}" for n in notes))
        for line in diffs[:6]:
            print("   ", line)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config field for every run that has it (JSON values: 1, true, \"off\" or off)")
    d.add_argument("--only", nargs="*", default=[], choices=sorted(RUNS))
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = parser.parse_args(argv)
    if args.command == "dump":
        settings = {}
        for item in args.set:
            key, _, value = item.partition("=")
            try:
                settings[key] = json.loads(value)
            except json.JSONDecodeError:
                settings[key] = value
        dump(args.out, settings, args.only)
        return 0
    return 1 if compare(args.a, args.b) else 0


if __name__ == "__main__":
    sys.exit(main())
