"""Run a method's loop inside a Ray Tune trial (``Sweep(executor="tune")``): one worker, reports
and checkpoints through ``ray.tune``.  The loop is the very same function Ray Train runs."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bdray.runtime.context import CHECKPOINT_FILE, RunContext, default_device, load_state, save_state_atomic


class TuneTrialContext(RunContext):
    def __init__(self, artifact_root: str, cpus: float = 1.0, verbose: bool = True):
        self.device = default_device()
        self.artifact_root = artifact_root
        self.verbose = verbose
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, int(cpus)))

    def report(self, metrics, state=None):
        import ray.tune

        row = {**metrics, "hardware": self.hardware()}
        if state is not None:
            with tempfile.TemporaryDirectory(prefix="bdray-ckpt-") as tmp:
                save_state_atomic(state, Path(tmp) / CHECKPOINT_FILE)
                ray.tune.report(row, checkpoint=ray.tune.Checkpoint.from_directory(tmp))
        else:
            ray.tune.report(row)

    def load_checkpoint(self):
        import ray.tune

        ckpt = ray.tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as folder:
            return load_state(Path(folder) / CHECKPOINT_FILE, self.device)
