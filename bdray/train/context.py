"""What a training loop talks to: device, rank, reporting, checkpoints, artifacts.

A method's loop is ``loop(config, ctx) -> final metrics``.  ``LocalContext`` runs it in this
process (tests, debugging); ``RayTrainContext`` runs the very same loop as a Ray Train worker.
Checkpoints are plain tensors/ints/dicts saved with ``torch.save`` and loaded with
``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from bdray.train.progress import EpochBar

CHECKPOINT_FILE = "state.pt"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}x{torch.get_num_threads()}threads"


def load_state(path: Path | str, device: torch.device | str = "cpu") -> Dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def save_state_atomic(state: Dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def checkpoint_folder(state: Dict[str, Any]):
    """A temporary folder holding ``state`` as a checkpoint file (for Ray's ``Checkpoint.from_directory``)."""
    with tempfile.TemporaryDirectory(prefix="bdray-ckpt-") as tmp:
        save_state_atomic(state, Path(tmp) / CHECKPOINT_FILE)
        yield tmp


def state_from_checkpoint(checkpoint, device) -> Optional[Dict[str, Any]]:
    """The state saved by ``checkpoint_folder`` in a Ray ``Checkpoint`` (None when there is none)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return load_state(Path(folder) / CHECKPOINT_FILE, device)


class InjectedFault(RuntimeError):
    """The crash ``Sweep.fault_at_epoch`` injects to test retries."""


def determinism_settings() -> Dict[str, Any]:
    """What decides whether a rerun reproduces a trial bit for bit (recorded with every trial)."""
    return {"torch_version": torch.__version__,
            "torch_deterministic_algorithms": int(torch.are_deterministic_algorithms_enabled()),
            "cudnn_deterministic": int(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": int(torch.backends.cudnn.benchmark),
            "torch_threads": torch.get_num_threads()}


class RunContext:
    """Base class: rank-0 logging and unwrapping; subclasses report and checkpoint."""

    device: torch.device = torch.device("cpu")
    rank: int = 0
    world_size: int = 1
    artifact_root: str = ""
    verbose: bool = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, message: str) -> None:
        if self.verbose and self.is_main:
            self.emit(f"[bdray] {message}")

    def emit(self, line: str) -> None:
        print(line, flush=True)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def report(self, metrics: Dict[str, Any], state: Optional[Dict[str, Any]] = None) -> None:
        raise NotImplementedError

    def load_checkpoint(self) -> Optional[Dict[str, Any]]:
        raise NotImplementedError

    def hardware(self) -> str:
        return hardware_description(self.device)

    artifacts_trained: int = 0  # attack artifacts this run trained itself / found in the store
    artifacts_reused: int = 0
    fault_at_epoch: Optional[int] = None  # test hook (Sweep.fault_at_epoch): crash once at this epoch
    resumed: bool = False                  # the run started from a checkpoint

    def maybe_fault(self, metrics: Dict[str, Any]) -> None:
        """Raise ``InjectedFault`` before reporting epoch ``fault_at_epoch`` -- unless this run
        resumed from a checkpoint, so a retried trial gets past it."""
        if self.fault_at_epoch is not None and not self.resumed and metrics.get("epoch") == self.fault_at_epoch:
            raise InjectedFault(f"injected fault before reporting epoch {self.fault_at_epoch} (test hook)")

    def placement(self) -> Dict[str, Any]:
        """What every row reported from inside Ray carries: where the run is and whether it found
        its attack artifacts in the store (``artifacts_reused``) or had to train them."""
        import ray

        row: Dict[str, Any] = {"hardware": self.hardware(), "reported_at": time.time(),
                               "artifacts_trained": self.artifacts_trained,
                               "artifacts_reused": self.artifacts_reused, **determinism_settings()}
        if ray.is_initialized():
            row["node_id"] = ray.get_runtime_context().get_node_id()
            row["node_ip"] = ray.util.get_node_ip_address()
        return row


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return getattr(model, "module", model)


class LocalContext(RunContext):
    """Runs a loop in this process; keeps every report and the last checkpoint in a folder."""

    def __init__(self, device: torch.device | str | None = None, checkpoint_dir: str | Path | None = None,
                 artifact_root: str | Path | None = None, verbose: bool = True, progress: Optional[str] = None):
        """``progress``: a label; with ``verbose`` the reports then advance a progress bar of the
        epochs (``bdray.train.progress``) instead of printing one line each."""
        self.device = torch.device(device) if device is not None else default_device()
        self._own_dir = checkpoint_dir is None
        self.checkpoint_dir = Path(checkpoint_dir or tempfile.mkdtemp(prefix="bdray-ckpt-"))
        # A folder made here goes when the context does, even if nobody calls cleanup().
        self._finalizer = (weakref.finalize(self, shutil.rmtree, str(self.checkpoint_dir), True)
                           if self._own_dir else None)
        self.artifact_root = str(artifact_root or default_artifact_root())
        self.verbose = verbose
        self._bar = EpochBar(progress) if progress and verbose else None
        self.history: List[Dict[str, Any]] = []
        self._t0 = time.time()

    def report(self, metrics, state=None):
        row = dict(metrics)
        row.setdefault("time_total_s", time.time() - self._t0)
        row.setdefault("reported_at", time.time())  # wall clock (Unix seconds), as from inside Ray
        self.history.append(row)
        if state is not None:
            save_state_atomic(state, self.checkpoint_dir / CHECKPOINT_FILE)
        if self._bar is not None:
            self._bar.update(row)
        elif self.verbose:
            shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in row.items() if k not in ("time_total_s", "reported_at"))
            print(f"[bdray] {shown}", file=sys.stdout, flush=True)

    def load_checkpoint(self):
        path = self.checkpoint_dir / CHECKPOINT_FILE
        return load_state(path, self.device) if path.exists() else None

    def cleanup(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._finalizer is not None:
            self._finalizer()


def default_artifact_root() -> Path:
    return Path(os.environ.get("BDRAY_ARTIFACTS", Path.home() / ".cache" / "bdray" / "artifacts"))
