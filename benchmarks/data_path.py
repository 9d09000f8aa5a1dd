"""Data path: images/s of bdray's poisoned training batch stream vs a per-sample PIL pipeline.

bdray: the split is poisoned once as batched tensor ops (``poison_split``), then each batch is an
index gather + float conversion + batched random crop/flip on the data's device
(``bdray.data.augmented_batches``: the same batches, bit for bit, as the engine's ``bdray.train.batches.shuffled`` source the ``backdoor`` loop trains on).

Baseline: what existing backdoor toolkits do -- a torchvision ``Dataset`` holding uint8 arrays
that, per sample, makes a PIL image, pastes the same trigger patch with PIL when the index is
poisoned (and relabels it), then ``RandomCrop(padding, reflect)`` / ``RandomHorizontalFlip`` /
``ToTensor``, batched by a ``DataLoader`` (the best of the worker counts tried is kept).

Same dataset, attack, poisoning rate, batch size and augmentation; both sides include their
poisoning.  Target: bdray >= 10x the baseline's images/s on a CPU.

    python benchmarks/data_path.py                       # embedded digits, CPU
    python benchmarks/data_path.py --dataset cifar10 --data-root ~/data --epochs 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import print_table, verdict, write_result  # noqa: E402
from bdray.attacks import build_trigger, poison_split  # noqa: E402
from bdray.data import augmented_batches, load_dataset  # noqa: E402


class PILPoisonedDataset(torch.utils.data.Dataset):
    """The per-sample PIL pipeline: HWC uint8 arrays, a trigger pasted per poisoned sample."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, poison_index, patch_hwc: np.ndarray,
                 top: int, left: int, target_class: int, transform):
        self.images, self.labels = images_hwc, labels
        self.poisoned = set(int(i) for i in poison_index)
        self.patch, self.top, self.left = patch_hwc, top, left
        self.target_class, self.transform = target_class, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        array = self.images[i]
        img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        label = int(self.labels[i])
        if i in self.poisoned:
            patch = self.patch[..., 0] if self.patch.shape[-1] == 1 else self.patch
            img.paste(Image.fromarray(patch), (self.left, self.top))
            label = self.target_class
        return self.transform(img), label


def bdray_stream(data, trigger, args, device) -> dict:
    data = data.to(device)
    t0 = time.perf_counter()
    poisoned = poison_split(data.train, trigger, rate=args.poison_rate, target_class=0, label_mode="dirty",
                            seed=0)
    images, labels = poisoned.split.images, poisoned.split.labels
    seen = 0
    for epoch in range(args.epochs):
        gen = torch.Generator().manual_seed(epoch)
        for x, y in augmented_batches(images, labels, args.batch_size, generator=gen,
                                      crop_padding=args.crop_padding, hflip=data.hflip):
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    return {"pipeline": f"bdray tensors ({device.type})", "workers": 0, "images": seen, "seconds": elapsed,
            "images_per_s": seen / elapsed, "last_batch": tuple(x.shape)}


def pil_stream(data, trigger, args, workers: int) -> dict:
    from torchvision import transforms

    size = data.image_shape[1:]
    steps = [transforms.RandomCrop(size, padding=args.crop_padding, padding_mode="reflect")]
    if data.hflip:
        steps.append(transforms.RandomHorizontalFlip())
    steps.append(transforms.ToTensor())
    t0 = time.perf_counter()  # the toolkit's poisoning: choose indices, keep a set, paste per sample
    images = data.train.images.permute(0, 2, 3, 1).contiguous().numpy()
    labels = data.train.labels.numpy()
    candidates = np.flatnonzero(labels != 0)
    rng = np.random.default_rng(0)
    index = rng.choice(candidates, size=round(args.poison_rate * len(labels)), replace=False)
    patch = (trigger.patch.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    top, left = trigger.position
    dataset = PILPoisonedDataset(images, labels, index, patch, top, left, 0, transforms.Compose(steps))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=False)
    seen = 0
    for _ in range(args.epochs):
        for x, y in loader:
            seen += len(y)
    elapsed = time.perf_counter() - t0
    return {"pipeline": "PIL Dataset + DataLoader", "workers": workers, "images": seen, "seconds": elapsed,
            "images_per_s": seen / elapsed, "last_batch": tuple(x.shape)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--trigger-size", type=int, default=3)
    p.add_argument("--poison-rate", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--crop-padding", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5, help="passes over the training split per pipeline")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to try")
    p.add_argument("--device", default="cpu", help="device of bdray's stream (the target is stated for cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--smoke-test", action="store_true", help="one pass, worker count 0 only")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/data_path.json)")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.epochs, args.workers = 1, [0]
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset, args.data_root)
    trigger = build_trigger("badnets", {"trigger_size": args.trigger_size}, data.image_shape, 0)
    print(f"data path: {args.dataset} train split {len(data.train)} images {data.image_shape}, badnets "
          f"{args.trigger_size}x{args.trigger_size} at rate {args.poison_rate}, batch {args.batch_size}, "
          f"{args.epochs} passes", flush=True)
    rows = [bdray_stream(data, trigger, args, torch.device(args.device))]
    for workers in args.workers:
        rows.append(pil_stream(data, trigger, args, workers))
    print_table(rows, ["pipeline", "workers", "images", "seconds", "images_per_s"])
    best_pil = max(r["images_per_s"] for r in rows[1:])
    speedup = rows[0]["images_per_s"] / best_pil
    summary = {"speedup_vs_best_pil": speedup,
               "target": verdict("bdray / best PIL images/s", speedup, 10.0)}
    write_result("data_path", rows, summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
