"""Every method's training epoch on the engine vs a bare PyTorch loop over the same work.

For each method the real run is made (``run_local``, the method's own config at small sizes on the
embedded data), and every epoch of every phase it declares is paired with a **bare epoch**: the
same phase's updates -- the same batch sources drawn from the same epoch generator, the same loss
functions on the same tensors and modules, the same optimisers -- driven by the loop one would
write by hand (``for batch in source: loss = ...; zero_grad; backward; step``) with none of the
engine's bookkeeping (per-step lr, autocast contexts, device-side loss tallies, image counts).
Both are timed from the epoch's start to a device sync, without the evaluation (the method's
own, the same either way); they alternate which goes first, so warm caches favour neither.
The bare epochs train the modules further; only their time is used.

ratio = bare time / engine time, the median over a method's epochs (1.0: no overhead; the target
is >= 0.95).
"""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any, Dict, List

import torch

from bdray.train import engine as engine_module
from bdray.train.device import synchronize
from bdray.train.settings import epoch_generator

SMALL = {"epochs": 4}
# method -> (registry name, config): the method's defaults at small budgets (digits, CPU); the erasers
# at the paper's 2,000 samples per epoch, so that an epoch is long enough to time (500: ~60 ms)
METHOD_RUNS: Dict[str, Any] = {
    "backdoor": ("backdoor", {"epochs": 6}),
    "backdoor_population": ("backdoor_population", {"member": {"epochs": 5}, "lrs": [0.02, 0.05, 0.1]}),
    "abl": ("abl", {"backdoor": SMALL, "isolation_epochs": 3, "clean_epochs": 3, "unlearn_epochs": 3,
                    "unlearn_stop_accuracy": None}),
    "cbd": ("cbd", {"backdoor": SMALL, "fb_epochs": 3, "epochs": 4}),
    "pt": ("pt", {"backdoor": SMALL, "partial_epochs": 3, "epochs": 4}),
    "finetune": ("finetune", {"backdoor": SMALL, "epochs": 5, "samples_per_epoch": 2000}),
    "fineprune": ("fineprune", {"backdoor": SMALL, "epochs": 5, "samples_per_epoch": 2000}),
    "nad": ("nad", {"backdoor": SMALL, "epochs": 5, "teacher_epochs": 3, "samples_per_epoch": 2000}),
    "neural_cleanse": ("neural_cleanse", {"backdoor": SMALL}),
    "dhbe": ("dhbe", {"backdoor": SMALL, "epochs": 5, "iters_per_epoch": 10}),
    "dfad": ("dhbe", {"backdoor": SMALL, "epochs": 5, "iters_per_epoch": 10, "lambda_abr": 0.0,
                      "trigger_generator": False}),
    "debias_dba": ("debias", {"strategy": "dba", "epochs": 5}),
    "debias_adversarial": ("debias", {"strategy": "adversarial", "epochs": 5}),
    "debias_reweighting": ("debias", {"strategy": "reweighting", "epochs": 5}),
}


def bare_epoch(phase, seed: int, epoch: int, device: torch.device) -> float:
    """The phase's updates for one epoch, driven by hand; seconds to the device sync."""
    t0 = time.perf_counter()
    for module in phase.training:
        module.train()
    gen = epoch_generator(seed, epoch)
    sources = [iter(update.batches(gen)) for update in phase.updates]
    live = [True] * len(sources)
    while live[0]:
        for k, (update, source) in enumerate(zip(phase.updates, sources)):
            batch = next(source, None) if live[k] else None
            if batch is None:
                live[k] = False
                if k == 0:
                    break
                continue
            out = update.loss(batch)
            loss = out[0] if isinstance(out, tuple) else out
            update.optimizer.zero_grad(set_to_none=True)
            (update.sign * loss).backward()
            update.optimizer.step()
            if update.after_step is not None:
                update.after_step()
    synchronize(device)
    return time.perf_counter() - t0


@contextlib.contextmanager
def paired_epochs(pairs: List[Dict[str, Any]]):
    """While active, every reporting engine epoch is paired with a bare epoch of the same phase."""
    original = engine_module.Engine._epoch

    def epoch(self, phase, info, multi):
        if not self.report:  # throwaway runs (NAD's teacher) are not timed
            return original(self, phase, info, multi)
        bare_first = len(pairs) % 2 == 1
        bare = bare_epoch(phase, self.seed, info.epoch, self.ctx.device) if bare_first else None
        metrics = original(self, phase, info, multi)
        if bare is None:
            bare = bare_epoch(phase, self.seed, info.epoch, self.ctx.device)
        pairs.append({"phase": phase.name, "engine_s": metrics["train_time_s"], "bare_s": bare})
        return metrics

    engine_module.Engine._epoch = epoch
    try:
        yield
    finally:
        engine_module.Engine._epoch = original


def method_rows(names: List[str], device: torch.device, artifact_root: str) -> List[Dict[str, Any]]:
    from bdray.runtime import run_local

    rows = []
    for label in names:
        method, cfg = METHOD_RUNS[label]
        run_local(method, cfg, device=device, artifact_root=artifact_root, verbose=False)  # artifact + warm-up
        pairs: List[Dict[str, Any]] = []
        with paired_epochs(pairs):
            run_local(method, cfg, device=device, artifact_root=artifact_root, verbose=False)
        ratios = [p["bare_s"] / p["engine_s"] for p in pairs if p["engine_s"] > 0]
        row = {"method": label, "epochs": len(pairs), "phases": "/".join(dict.fromkeys(p["phase"] for p in pairs)),
               "engine_epoch_s": statistics.median(p["engine_s"] for p in pairs),
               "bare_epoch_s": statistics.median(p["bare_s"] for p in pairs),
               "ratio_vs_bare": statistics.median(ratios)}
        rows.append(row)
        print(f"  {label}: {row['epochs']} epochs ({row['phases']}), engine {row['engine_epoch_s']:.3f} s, "
              f"bare {row['bare_epoch_s']:.3f} s, ratio {row['ratio_vs_bare']:.3f}", flush=True)
    return rows
