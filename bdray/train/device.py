"""How a training loop uses its device: autocast precision, memory format, ``torch.compile``.

A loop declares three config fields (``precision``, ``channels_last``, ``compile``), checks them
with ``check_speed_fields`` and builds a ``FastPath`` on its device.  Everything defaults to
"auto": bf16 autocast (fp16 with gradient scaling where bf16 is missing) and cuDNN benchmark on
CUDA, fp32 on a CPU (where autocast rarely pays); channels_last everywhere (oneDNN's CPU
convolutions are faster in it too: RESULTS "Measurements behind the defaults").  The choices actually used go
into every report (``precision_used``, ``channels_last_used``, ``compiled``, ``compile_time_s``).
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Any, Callable, Dict, Iterable, Optional

import torch

from bdray.config import ConfigError, check_choice
from bdray.train.context import unwrap

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CHANNELS_LAST = ("auto", "on", "off")


def check_speed_fields(cfg: Any) -> None:
    check_choice("precision", cfg.precision, PRECISIONS)
    check_choice("channels_last", cfg.channels_last, CHANNELS_LAST)
    if not isinstance(cfg.compile, bool):
        raise ConfigError("compile", cfg.compile, "True or False")


def resolve_precision(requested: str, device: torch.device) -> str:
    """The autocast precision a loop runs in on ``device`` for the requested one."""
    check_choice("precision", requested, PRECISIONS)
    on_cuda = device.type == "cuda"
    bf16_ok = (not on_cuda) or torch.cuda.is_bf16_supported()
    if requested == "auto":
        return ("bf16" if bf16_ok else "fp16") if on_cuda else "fp32"
    if requested == "bf16" and not bf16_ok:
        return "fp16"  # pre-Ampere GPU: fp16 with gradient scaling instead
    return requested


def resolve_channels_last(requested: str, device: torch.device) -> bool:
    check_choice("channels_last", requested, CHANNELS_LAST)
    return requested in ("on", "auto")


class FastPath:
    """One loop's device settings.

    Use ``fast.train_model(model)`` for the module the training steps call (channels_last,
    compiled), ``with fast.autocast():`` around forward passes and ``fast.step(loss, opt)`` for
    backward + optimizer step (with gradient scaling in fp16).  Evaluation keeps using the plain
    module: it shares the parameters.
    """

    def __init__(self, device: torch.device | str, precision: str = "auto", channels_last: str = "auto",
                 compile: bool = False):
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype: Optional[torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.channels_last = resolve_channels_last(channels_last, self.device)
        self.compile = bool(compile)
        self.compile_time_s = 0.0
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        if self.device.type == "cuda" and not torch.are_deterministic_algorithms_enabled() \
                and not torch.backends.cudnn.deterministic:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels

    # -- model and inputs ------------------------------------------------------------------
    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move to channels_last where enabled (before DDP wrapping: parameters keep their layout)."""
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def train_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The callable the training steps use: ``torch.compile(model)`` when compiling."""
        return torch.compile(model) if self.compile else model

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self):
        if self.dtype is None:  # fp32: no autocast context to enter and leave every step
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # -- steps -----------------------------------------------------------------------------
    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def warm_up(self, module: torch.nn.Module, call: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
                batches: Iterable[torch.Tensor]) -> None:
        """Compile ahead of training (timed into ``compile_time_s``): run forward + backward of
        ``call(module, x)`` once per batch shape, then put back the module's state (BN statistics)
        and drop the gradients, so the training that follows is the same as without compiling."""
        if not self.compile:
            return
        raw = unwrap(getattr(module, "_orig_mod", module))  # under torch.compile's and DDP's wrappers
        saved = copy.deepcopy(raw.state_dict())
        t0 = time.perf_counter()
        for x in batches:
            with self.autocast():
                out = call(module, self.inputs(x))
            out.float().sum().backward()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.compile_time_s += time.perf_counter() - t0
        raw.load_state_dict(saved)
        for p in raw.parameters():
            p.grad = None

    def columns(self) -> Dict[str, Any]:
        return {"precision_used": self.precision, "channels_last_used": int(self.channels_last),
                "compiled": int(self.compile), "compile_time_s": self.compile_time_s}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
