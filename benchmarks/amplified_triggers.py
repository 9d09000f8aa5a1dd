"""Incomplete erasing under amplified triggers (DHBE paper §5.3, Table 6), on any dataset.

Trains (or reuses) the backdoored model, erases it with DHBE and with blind baselines at several
learning rates, and prints ASR with the trigger pasted ×1, ×4 and ×9 for each, plus whether the
paper's finding holds: DHBE's ×9 ASR stays low while some blind baseline's ×9 ASR exceeds its own
×1 ASR by at least 0.2.  Writes the rows as JSON.

    python benchmarks/amplified_triggers.py                                    # embedded digits, CPU
    python benchmarks/amplified_triggers.py --dataset cifar10 --download \\
        --trigger-size 3 --dhbe-epochs 60 --device cuda                        # the paper's setting
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.methods.attack.backdoor import BackdoorConfig  # noqa: E402
from bdray.methods.erasing.dhbe import DHBEConfig  # noqa: E402
from bdray.runtime import run_local  # noqa: E402
from bdray.presets import method_config, preset_for, resolve_budget  # noqa: E402

BASELINES = {"finetune": [0.01, 0.02, 0.04], "fineprune": [0.01, 0.02], "nad": [0.01, 0.02]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--download", action="store_true")
    p.add_argument("--model", default=None)
    p.add_argument("--trigger-size", type=int, default=3)
    p.add_argument("--dhbe-lambda", type=float, default=None, help="λ (default: the config's)")
    p.add_argument("--dhbe-epochs", type=int, default=None, help="DHBE epochs (paper: 300)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--artifacts", default=None, help="artifact store (default: ~/.cache/bdray/artifacts)")
    p.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/amplified_<dataset>.json)")
    args = p.parse_args(argv)

    digits = resolve_budget(args.dataset) == "cpu"  # the digits' and npz files' CPU-sized settings
    _, preset = preset_for(args.dataset, args.data_root, "cpu" if digits else "paper", args.model)
    backdoor = BackdoorConfig.from_dict({**preset, "dataset": args.dataset, "data_root": args.data_root,
                                         "download": args.download,
                                         "attack_params": {"trigger_size": args.trigger_size}})
    dhbe = DHBEConfig(backdoor=backdoor) if digits else method_config("dhbe", backdoor, "paper")
    if args.dhbe_lambda is not None:
        dhbe = dhbe.replace(lambda_abr=args.dhbe_lambda)
    if args.dhbe_epochs:
        dhbe = dhbe.replace(epochs=args.dhbe_epochs)
    runs = [("dhbe", dhbe)] + [(m, {"backdoor": backdoor.to_dict(), "lr": lr} if digits else
                                 {"backdoor": backdoor.to_dict(), "lr": lr, "samples_per_epoch": 2000})
                                for m, lrs in BASELINES.items() for lr in lrs]
    rows = []
    for method, cfg in runs:
        t0 = time.time()
        m = run_local(method, cfg, device=args.device, artifact_root=args.artifacts, verbose=False).metrics
        lr = cfg["lr"] if isinstance(cfg, dict) else cfg.student_lr
        rows.append({"method": method, "lr": lr, "acc": m["acc"], "asr": m["asr"], "asr_x4": m["asr_x4"],
                     "asr_x9": m["asr_x9"], "teacher_acc": m["teacher_acc"], "seconds": time.time() - t0})
        r = rows[-1]
        print(f"{method:10s} lr={lr:<6g} acc={r['acc']:.3f} asr x1={r['asr']:.3f} x4={r['asr_x4']:.3f} "
              f"x9={r['asr_x9']:.3f}  ({r['seconds']:.0f} s)", flush=True)
    dhbe_row = rows[0]
    gap9 = max(r["asr_x9"] - r["asr"] for r in rows[1:])
    gap4 = max(r["asr_x4"] - r["asr"] for r in rows[1:])
    holds9 = dhbe_row["asr_x9"] <= 0.15 and gap9 >= 0.2
    holds4 = dhbe_row["asr_x4"] <= 0.15 and gap4 >= 0.2
    print(f"\nDHBE x9={dhbe_row['asr_x9']:.3f}; largest blind (x9 - x1)={gap9:.3f} -> finding at x9 "
          f"{'holds' if holds9 else 'does not hold'}; at x4 {'holds' if holds4 else 'does not hold'} "
          f"(DHBE x4={dhbe_row['asr_x4']:.3f}, largest blind (x4 - x1)={gap4:.3f})")
    out = Path(args.out or Path(__file__).parent / "results" / f"amplified_{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": dt.date.today().isoformat(), "machine": platform.platform(),
                               "command": " ".join(sys.argv), "rows": rows, "holds_x9": holds9,
                               "holds_x4": holds4}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
