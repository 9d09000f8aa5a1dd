"""Sweep DHBE's student learning rate against a BadNets backdoor (DHBE paper, Fig. 10 / Fig. 3).

Trains the BadNets-backdoored model once (a content-addressed artifact), then runs a Ray Tune +
Optuna (seeded TPE, multi-objective: acc max, asr min) study of DHBE over ``student_lr``, each
trial a Ray Train run.  Writes ``trials.parquet``/``epochs.parquet`` and a report folder with the
ACC–ASR scatter + logistic fit (``tradeoff.png``) and a Markdown table.

    python sweeps/dhbe_lr.py                       # embedded digits data, CPU, ~5 minutes
    python sweeps/dhbe_lr.py --smoke-test          # a minute: tiny trainings, 2 trials
    python sweeps/dhbe_lr.py --dataset cifar10 --model resnet18 --download --gpus-per-trial 0.5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run from a checkout (or a `ray job submit --working-dir .` copy) without installing bdray.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdray.methods.backdoor import BackdoorConfig  # noqa: E402
from bdray.methods.dhbe import DHBEConfig  # noqa: E402
from bdray.sweep import DEFAULT_STORAGE, Sweep, run_sweep  # noqa: E402

# The image-sized defaults of the embedded data and the paper's CIFAR settings.
PRESETS = {
    "digits": {"backdoor": {}, "dhbe": {}},
    "cifar10": {"backdoor": {"epochs": 100, "batch_size": 128, "lr": 0.1, "crop_padding": 4,
                             "attack_params": {"trigger_size": 3}},
                "dhbe": {"paper": True}},
}


def build_sweep(args) -> Sweep:
    preset = PRESETS.get(args.dataset, PRESETS["cifar10"])
    backdoor = BackdoorConfig.from_dict({
        **preset["backdoor"], "dataset": args.dataset, "model": args.model or ("small_cnn" if args.dataset == "digits"
                                                                                else "resnet18"),
        "data_root": args.data_root, "download": args.download, "poison_rate": args.poison_rate,
        "target_class": args.target_class,
        "attack_params": {**preset["backdoor"].get("attack_params", {}), "trigger_size": args.trigger_size}
        if args.trigger_size else preset["backdoor"].get("attack_params", {}),
    })
    dhbe_values = {k: v for k, v in preset["dhbe"].items() if k != "paper"}
    if args.smoke_test:
        backdoor = backdoor.replace(epochs=4, batch_size=64)
        dhbe_values.update(epochs=2, iters_per_epoch=3)
    base = (DHBEConfig.paper(backdoor, **dhbe_values) if preset["dhbe"].get("paper")
            else DHBEConfig(backdoor=backdoor, **dhbe_values))
    if args.epochs:
        base = base.replace(epochs=args.epochs)
    from ray import tune

    return Sweep(
        name=args.name or ("dhbe_lr_smoke" if args.smoke_test else f"dhbe_lr_{args.dataset}"),
        method="dhbe",
        base_config=base,
        search_space={"student_lr": tune.loguniform(args.lr_min, args.lr_max)},
        objectives=(("acc", "max"), ("asr", "min")),
        num_samples=2 if args.smoke_test else args.num_samples,
        max_concurrent=args.max_concurrent,
        storage_path=args.storage_path,
        seed=args.seed,
        workers_per_trial=args.workers_per_trial,
        cpus_per_worker=args.cpus_per_trial,
        gpus_per_worker=args.gpus_per_trial,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke-test", action="store_true", help="tiny trainings and 2 trials, to check the plumbing")
    parser.add_argument("--dataset", default="digits", help="digits (embedded), mnist, cifar10, cifar100, gtsrb, npz")
    parser.add_argument("--data-root", default=None, help="data folder (or the .npz file for --dataset npz)")
    parser.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    parser.add_argument("--model", default=None, help="small_cnn, resnet18, preact_resnet18, wrn_16_1")
    parser.add_argument("--poison-rate", type=float, default=0.1)
    parser.add_argument("--target-class", type=int, default=0)
    parser.add_argument("--trigger-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="DHBE epochs (default: the preset's)")
    parser.add_argument("--lr-min", type=float, default=0.01)
    parser.add_argument("--lr-max", type=float, default=0.2)
    parser.add_argument("--num-samples", type=int, default=6, help="number of trials")
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--storage-path", default=DEFAULT_STORAGE, help="local folder or s3:// / gs:// URI")
    parser.add_argument("--name", default=None, help="sweep (and Optuna study) name; reuse it to add trials")
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    parser.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers (DDP) per trial")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per Train worker")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per Train worker (fractional ok)")
    args = parser.parse_args(argv)

    sweep = build_sweep(args)  # every config error surfaces here, before Ray starts
    sweep.validate()
    result = run_sweep(sweep)

    from analysis.report import write_report
    from analysis.tables import trials_table

    print("\n=== trials of this run ===")
    print(trials_table(result.trials, params=["student_lr"]).to_string(index=False))
    paths = write_report(sweep.root, params=["student_lr"])
    print(f"\nsweep finished in {result.wall_time_s:.0f} s; {len(result.all_trials)} trials in total so far")
    print(f"trials:   {sweep.trials_path}\nepochs:   {sweep.epochs_path}")
    print(f"plot:     {paths['tradeoff_png']}\ntable:    {paths['trials_md']}")
    failed = result.trials[result.trials["status"] != "TERMINATED"] if len(result.trials) else result.trials
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
