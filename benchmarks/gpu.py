"""GPU: CIFAR ResNet-18 epoch time, DHBE iterations/s, and packed trials per GPU.

On a machine with an NVIDIA GPU (skipped, with a message and a JSON record saying why, where
there is none):

1. **ResNet-18 epoch** (``--model``; batch 512, 50,000 CIFAR-shaped images) through ``backdoor``
   loop: fp32 NCHW, bf16 + channels_last, and bf16 + channels_last + ``torch.compile``
   (compile time reported apart).  Target on an H100: epoch ≤ 1 s.
2. **DHBE iterations/s** with the paper's sizes (batch 256, generator width 128, 5 student steps
   per iteration), same three settings.
3. **Packed trials**: 1, 2, 4, 8 ``backdoor`` trials at once on the one GPU through a real
   ``run_sweep`` (``gpus_per_worker = 1/K``, ``executor="tune"``); aggregate training images/s.
   Target: 4 packed trials ≥ 2.5× one trial's throughput.

Without ``--data-root`` the images are random CIFAR-shaped uint8 tensors (an epoch costs the
same whatever the pixels); with ``--data-root`` CIFAR-10 is loaded through torchvision's files.

    python benchmarks/gpu.py
    python benchmarks/gpu.py --data-root ~/data --pack 1 2 4 8
    python benchmarks/gpu.py --smoke-test --allow-cpu    # check the plumbing on a CPU, tiny sizes
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import machine, print_table, verdict, write_result  # noqa: E402
from bdray.methods.attack.backdoor import BackdoorConfig  # noqa: E402
from bdray.presets import method_config  # noqa: E402

SETTINGS = {"fp32": dict(precision="fp32", channels_last="off", compile=False),
            "bf16+channels_last": dict(precision="bf16", channels_last="on", compile=False),
            "bf16+channels_last+compile": dict(precision="bf16", channels_last="on", compile=True)}


def cifar_shaped(folder: Path, n_train: int, n_test: int) -> str:
    rng = np.random.default_rng(0)
    path = folder / f"cifar_shaped_{n_train}.npz"
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
             y_train=rng.integers(0, 10, n_train), x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
             y_test=rng.integers(0, 10, n_test))
    return str(path)


def resnet_epochs(base: BackdoorConfig, device, epochs: int, artifacts: str, settings):
    from bdray.runtime import run_local

    rows = []
    for name, setting in settings.items():
        result = run_local("backdoor", base.replace(epochs=epochs, **setting), device=device,
                           artifact_root=artifacts, verbose=False)
        last = result.history[-1]
        rows.append({"benchmark": "train epoch", "model": base.model, "setting": name, "epoch_train_s": last["train_time_s"],
                     "images_per_s": last["train_images_per_s"], "compile_time_s": last["compile_time_s"],
                     "precision_used": last["precision_used"]})
        print(f"  {base.model} {name}: {last['train_time_s']:.2f} s/epoch (compile {last['compile_time_s']:.1f} s)",
              flush=True)
    return rows


def dhbe_iterations(teacher: BackdoorConfig, device, iters: int, artifacts: str, batch_size: int, width: int,
                    settings):
    from bdray.runtime import run_local

    rows = []
    for name, setting in settings.items():
        cfg = method_config("dhbe", teacher, "paper", epochs=2, iters_per_epoch=iters, batch_size=batch_size,
                               generator_width=width, **setting)
        result = run_local("dhbe", cfg, device=device, artifact_root=artifacts, verbose=False)
        last = result.history[-1]
        rows.append({"benchmark": "dhbe iterations", "setting": name, "iterations_per_s": last["train_steps_per_s"],
                     "compile_time_s": last["compile_time_s"], "precision_used": last["precision_used"]})
        print(f"  dhbe {name}: {last['train_steps_per_s']:.1f} it/s", flush=True)
    return rows


def packed(base: BackdoorConfig, counts, storage: str, use_gpu: bool):
    import ray
    from ray import tune

    from bdray.sweep.runner import Sweep, run_sweep

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    rows = []
    for k in counts:
        spec = Sweep(name=f"packed-{k}", method="backdoor", base_config=base,
                     search_space={"seed": tune.grid_search(list(range(k)))}, search="grid", num_samples=1,
                     max_concurrent=k, storage_path=storage, executor="tune", cpus_per_worker=1.0,
                     gpus_per_worker=(1.0 / k) if use_gpu else 0.0, verbose=False)
        t0 = time.perf_counter()
        result = run_sweep(spec)
        wall = time.perf_counter() - t0
        trials = result.trials
        if (trials["status"] != "TERMINATED").any():
            raise RuntimeError(f"packed-{k}: failed trials: {trials['error'].tolist()}")
        # trials run side by side: their images/s add up while they overlap
        aggregate = float(trials["train_images_per_s"].sum())
        rows.append({"benchmark": "packed trials", "setting": f"{k} per GPU", "trials": k, "wall_s": wall,
                     "images_per_s": aggregate})
        print(f"  {k} packed: {aggregate:,.0f} images/s together ({wall:.1f} s wall)", flush=True)
    for row in rows:
        row["vs_one_trial"] = row["images_per_s"] / rows[0]["images_per_s"]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="CIFAR-10 folder (default: random CIFAR-shaped tensors)")
    p.add_argument("--epochs", type=int, default=3, help="resnet18 epochs per setting (the last is reported)")
    p.add_argument("--dhbe-iters", type=int, default=50, help="DHBE iterations per epoch (2 epochs)")
    p.add_argument("--pack", type=int, nargs="+", default=[1, 2, 4, 8], help="trials per GPU to try")
    p.add_argument("--pack-epochs", type=int, default=3)
    p.add_argument("--pack-batch-size", type=int, default=128)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes (and small_cnn on a CPU)")
    p.add_argument("--allow-cpu", action="store_true", help="run on a CPU anyway (plumbing check only)")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/gpu.json)")
    args = p.parse_args(argv)

    if not torch.cuda.is_available() and not args.allow_cpu:
        info = machine()
        reason = (f"GPU benchmarks skipped: no NVIDIA GPU is visible to torch {torch.__version__} on this machine "
                  f"({info['cpu_cores']} CPU cores, {info['processor']}). Run on a GPU machine, "
                  "or pass --smoke-test --allow-cpu to check the plumbing.")
        print(reason)
        write_result("gpu", [], {"skipped": True, "reason": reason}, args.out)
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n_train, n_test, batch, width = 50_000, 10_000, 512, 128
    dhbe_batch = 256
    settings = dict(SETTINGS)
    if args.smoke_test:
        if device.type == "cpu":  # ResNet-18 (let alone compiling it) takes minutes on a CPU;
            settings.pop("bf16+channels_last+compile")  # tests/test_speed.py covers compile
            args.model = "small_cnn"
        n_train, n_test, batch, width, dhbe_batch = 512, 256, 128, 16, 32
        args.epochs, args.dhbe_iters, args.pack, args.pack_epochs = 2, 2, args.pack[:2], 1
    print(f"GPU benchmarks on {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        if args.data_root:
            dataset, root = "cifar10", args.data_root
        else:
            dataset, root = "npz", cifar_shaped(Path(folder), n_train, n_test)
        base = BackdoorConfig(dataset=dataset, data_root=root, model=args.model, batch_size=batch, lr=0.1,
                              crop_padding=4)
        artifacts = f"{folder}/artifacts"
        rows += resnet_epochs(base, device, args.epochs, artifacts, settings)
        rows += dhbe_iterations(base.replace(epochs=1), device, args.dhbe_iters, artifacts, dhbe_batch, width,
                                settings)
        pack_base = base.replace(epochs=args.pack_epochs, batch_size=args.pack_batch_size)
        rows += packed(pack_base, args.pack, f"{folder}/sweeps", device.type == "cuda")

    print()
    print_table(rows, ["benchmark", "model", "setting", "epoch_train_s", "iterations_per_s", "images_per_s",
                       "compile_time_s", "vs_one_trial"])
    best_epoch = min(r["epoch_train_s"] for r in rows if r["benchmark"] == "train epoch")
    summary = {"device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
               "targets": [verdict(f"best {args.model} epoch, s (H100 target: resnet18)", best_epoch, 1.0, higher_is_better=False)]}
    four = [r for r in rows if r["benchmark"] == "packed trials" and r["trials"] == 4]
    if four:
        summary["targets"].append(verdict("4 packed trials vs one (H100 target)", four[0]["vs_one_trial"], 2.5))
    write_result("gpu", rows, summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
