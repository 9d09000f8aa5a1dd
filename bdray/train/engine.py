"""The training engine: a method declares its phases, the engine runs their epochs.

A **phase** (``Phase``) is a named run of epochs -- ABL's isolation, clean training and unlearning,
CBD's f_B and f_C, PT's partial and final training.  Each epoch of a phase is a sequence of
steps; each step applies the phase's **updates** (``Update``) in order: draw the update's next
batch, compute its loss, step its optimiser (descent, or ascent with ``sign=-1``).  The first
update's batches decide how many steps an epoch has; a later update whose batches run out is
skipped for the rest of the epoch.  A batch is a ``Batch`` of images (the engine puts it in the
device settings' memory format) or any item whose ``len()`` is the number of images it stands for,
such as DHBE's draws of generator noise.

The engine owns what every method used to write for itself:
- the epoch's random numbers: one CPU generator per epoch (``epoch_generator``), from which every
  batch source draws its shuffling and augmentation;
- the device settings (``DeviceSettings``: autocast precision, channels_last, ``torch.compile``)
  for every module it prepares and every loss it computes;
- loss sums kept on the device, read back once per epoch;
- timing (``train_time_s`` after a device sync, ``epoch_time_s`` with the evaluation,
  ``train_images_per_s``, ``train_steps_per_s``) and the device columns (``precision_used``, ``channels_last_used``,
  ``compiled``);
- one checkpoint per epoch (every registered module and optimiser, the method's ``state`` such as
  an isolated set, which phases stopped early, and torch's global random state), and resume from
  it: a resumed run repeats the uninterrupted run's epochs exactly;
- the report: the phase's evaluation plus the above, with ``stage`` when a run has several phases.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from bdray.train.context import RunContext, unwrap
from bdray.train.device import FastPath, synchronize
from bdray.train.schedules import set_lr
from bdray.train.settings import DeviceSettings, epoch_generator


class Batch(NamedTuple):
    x: torch.Tensor    # float images in [0, 1] on the device (augmented as the source chose)
    y: torch.Tensor    # labels
    idx: torch.Tensor  # positions in the source split (on the device), e.g. to look up poison marks


# a loss part: a per-batch mean (weighted by the batch size over the epoch) or an explicit (sum, count)
Part = Union[torch.Tensor, Tuple[torch.Tensor, Any]]
LossOut = Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, Part]]]


@dataclasses.dataclass
class Update:
    """One optimiser step of a training step."""

    optimizer: torch.optim.Optimizer
    batches: Callable[[torch.Generator], Iterable[Batch]]   # one epoch of batches from the epoch's generator
    loss: Callable[[Batch], LossOut]                         # the batch-mean loss (and named parts)
    sign: float = 1.0                                        # -1: gradient ascent on the loss
    name: Optional[str] = "train_loss"                       # the reported epoch mean of the loss (None: only its parts)
    lr: Optional[Callable[[float], float]] = None            # lr at the phase's progress in [0, 1), set per epoch ...
    steps: Optional[int] = None                              # ... or, given the epoch's step count, before every step
    after_step: Optional[Callable[[], None]] = None          # e.g. hold pruned weights at zero
    models: int = 1                                          # models each image trains (a population's K)


@dataclasses.dataclass(frozen=True)
class EpochInfo:
    epoch: int        # 0-based, over the whole run
    phase_epoch: int  # 0-based, within the phase


@dataclasses.dataclass
class Phase:
    name: str
    epochs: int
    updates: Sequence[Update]
    evaluate: Callable[[EpochInfo], Dict[str, Any]]          # the epoch's metrics (after training)
    training: Sequence[nn.Module] = ()                       # put in train mode at each epoch's start
    begin: Optional[Callable[[], None]] = None               # before the phase's first epoch, also on resume
    stop: Optional[Callable[[Dict[str, Any]], bool]] = None  # end the phase early after this epoch


class _Tally:
    """Sums and counts of the epoch's losses, kept on the device."""

    def __init__(self, device: torch.device):
        self.device = device
        self.sums: Dict[str, torch.Tensor] = {}
        self.counts: Dict[str, Any] = {}

    def add(self, name: str, value: torch.Tensor, count: Any, weight: float = 1.0) -> None:
        """Add ``weight · value`` to the sum of ``name`` and ``count`` to its count (one device op
        per step after the first)."""
        if name in self.sums:
            self.sums[name].add_(value.detach(), alpha=weight)
            self.counts[name] = self.counts[name] + count
        else:
            self.sums[name] = value.detach().to(torch.float64, copy=True).mul_(weight)
            self.counts[name] = count

    def means(self) -> Dict[str, float]:
        """One device-to-host read for all of them."""
        if not self.sums:
            return {}
        names = list(self.sums)
        counts = [torch.as_tensor(self.counts[k], dtype=torch.float64, device=self.device) for k in names]
        values = torch.stack([self.sums[k] for k in names] + counts).tolist()
        n = len(names)
        return {k: (values[i] / values[n + i] if values[n + i] else math.nan) for i, k in enumerate(names)}


class Engine:
    """Runs a method's phases on ``ctx``.

    ``report=False``: a throwaway run (no evaluation, no report, no checkpoint, no resume), e.g.
    NAD's teacher.  Register what a checkpoint must hold with ``module`` and ``optimizer``; put
    anything else a resumed run needs (tensors, ints, strings) in ``state`` (its tensors come back
    on the CPU)."""

    def __init__(self, ctx: RunContext, settings: DeviceSettings, seed: int, *, name: str = "train",
                 report: bool = True):
        self.ctx = ctx
        self.name = name
        self.seed = seed
        self.report = report
        self.fast = FastPath(ctx.device, settings.precision, settings.channels_last, settings.compile)
        self.modules: Dict[str, nn.Module] = {}
        self.optimizers: Dict[str, torch.optim.Optimizer] = {}
        self.state: Dict[str, Any] = {}
        self.start_epoch = 0
        self._stopped: List[str] = []
        self._callers: Dict[int, Any] = {}

    # -- what the method registers ---------------------------------------------------------
    def module(self, name: str, model: nn.Module) -> nn.Module:
        """``model`` in the device settings' memory format, on the device (DDP-wrapped under Ray
        Train), saved in every checkpoint.  Create its optimisers after this call."""
        prepared = self.ctx.prepare_model(self.fast.prepare(model))
        self.modules[name] = prepared
        return prepared

    def optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        self.optimizers[name] = optimizer
        return optimizer

    def warm_up(self, module: nn.Module, call: Callable[[Any, torch.Tensor], torch.Tensor],
                batches: Iterable[torch.Tensor]) -> None:
        """When compiling: compile ``call(caller(module), x)`` ahead of training, once per batch
        shape, timed as ``compile_time_s`` apart from ``train_time_s`` (``FastPath.warm_up``)."""
        self.fast.warm_up(self.caller(module), call, batches)

    def caller(self, module: nn.Module):
        """What a loss should call for ``module``'s forward pass: the module, or its compiled form
        when compiling (evaluation keeps the plain module; they share the parameters)."""
        key = id(module)
        if key not in self._callers:
            self._callers[key] = self.fast.train_model(module)
        return self._callers[key]

    # -- running ---------------------------------------------------------------------------
    def resume(self) -> Optional[Dict[str, Any]]:
        """Load the context's checkpoint into the registered modules, optimisers and ``state``
        (call once everything is registered; ``run`` does it).  Returns the method's ``state``."""
        if not self.report:
            return None
        ckpt = self.ctx.load_checkpoint()
        if ckpt is None:
            return None
        for name, module in self.modules.items():
            unwrap(module).load_state_dict(ckpt["modules"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        self.state.update({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in ckpt["state"].items()})
        self._stopped = list(ckpt["stopped"])
        torch.set_rng_state(ckpt["rng"].cpu())
        if self.ctx.device.type == "cuda" and "rng_cuda" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda"].cpu(), self.ctx.device)
        self.start_epoch = int(ckpt["epoch"])
        self.ctx.log(f"{self.name}: resuming from epoch {self.start_epoch}")
        return self.state

    def run(self, phases: Sequence[Phase], resume: bool = True) -> Dict[str, Any]:
        """Every phase's epochs after the checkpoint's; returns the last epoch's metrics."""
        if resume:
            self.resume()
        metrics: Dict[str, Any] = {}
        planned = sum(phase.epochs for phase in phases)  # reported: a trial a scheduler stopped shows it
        first = 0
        for phase in phases:
            last = first + phase.epochs
            if last > self.start_epoch and phase.epochs > 0 and phase.name not in self._stopped:
                if phase.begin is not None:
                    phase.begin()
                for epoch in range(max(first, self.start_epoch), last):
                    metrics = self._epoch(phase, EpochInfo(epoch, epoch - first), multi=len(phases) > 1)
                    metrics["epochs_planned"] = planned
                    if phase.stop is not None and self.report and phase.stop(metrics):
                        self._stopped.append(phase.name)
                    if self.report:
                        self.ctx.report(metrics, self._checkpoint(epoch + 1))
                    if phase.name in self._stopped:
                        break
            first = last
        return metrics

    def _epoch(self, phase: Phase, info: EpochInfo, multi: bool) -> Dict[str, Any]:
        fast = self.fast
        t0 = time.perf_counter()
        for module in phase.training:
            module.train()
        for update in phase.updates:
            if update.lr is not None and update.steps is None:
                set_lr(update.optimizer, update.lr(info.phase_epoch / phase.epochs))
        gen = epoch_generator(self.seed, info.epoch)
        tally = _Tally(self.ctx.device)
        sources = [iter(update.batches(gen)) for update in phase.updates]
        images = 0
        exhausted = [False] * len(sources)
        step = 0
        while not exhausted[0]:
            for k, (update, source) in enumerate(zip(phase.updates, sources)):
                batch = None if exhausted[k] else next(source, None)
                if batch is None:
                    exhausted[k] = True
                    if k == 0:
                        break  # the first update's batches set the epoch's length
                    continue
                if isinstance(batch, Batch):
                    batch = Batch(fast.inputs(batch.x), batch.y, batch.idx)
                if update.lr is not None and update.steps is not None:
                    set_lr(update.optimizer, update.lr((info.phase_epoch + step / update.steps) / phase.epochs))
                with fast.autocast():
                    out = update.loss(batch)
                loss, parts = out if isinstance(out, tuple) else (out, {})
                fast.step(update.sign * loss if update.sign != 1.0 else loss, update.optimizer)
                if update.after_step is not None:
                    update.after_step()
                n = len(batch.y) if isinstance(batch, Batch) else len(batch)
                images += n * update.models
                if update.name is not None:
                    tally.add(update.name, loss, n, weight=n)
                for key, part in parts.items():
                    if isinstance(part, tuple):
                        tally.add(key, part[0], part[1])
                    else:
                        tally.add(key, part, n, weight=n)
            if not exhausted[0]:
                step += 1
        synchronize(self.ctx.device)
        train_time = time.perf_counter() - t0
        if not self.report:
            return {}
        metrics = dict(phase.evaluate(info))
        metrics.update(tally.means())
        if multi:
            metrics["stage"] = phase.name
        metrics.update(epoch=info.epoch + 1, epoch_time_s=time.perf_counter() - t0, train_time_s=train_time,
                       train_images_per_s=images * self.ctx.world_size / max(train_time, 1e-9),
                       train_steps_per_s=step / max(train_time, 1e-9),
                       resumed_from_epoch=self.start_epoch, precision_used=fast.precision,
                       channels_last_used=int(fast.channels_last), compiled=int(fast.compile),
                       compile_time_s=fast.compile_time_s)
        return metrics

    def _checkpoint(self, epochs_done: int) -> Dict[str, Any]:
        ckpt = {"epoch": epochs_done,
                "modules": {k: unwrap(m).state_dict() for k, m in self.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "state": dict(self.state), "stopped": list(self._stopped), "rng": torch.get_rng_state()}
        if self.ctx.device.type == "cuda":
            ckpt["rng_cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return ckpt


def cross_entropy(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Batch], torch.Tensor]:
    """The plain loss of an update: batch-mean cross-entropy of ``forward`` on the batch."""
    return lambda batch: F.cross_entropy(forward(batch.x), batch.y)
