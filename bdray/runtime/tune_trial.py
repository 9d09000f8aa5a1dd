"""Run a method's loop inside a Ray Tune trial (``Sweep(executor="tune")``): one worker, reports
and checkpoints through ``ray.tune``.  The loop is the very same function Ray Train runs."""
from __future__ import annotations

import torch

from bdray.train.context import RunContext, checkpoint_folder, default_device, state_from_checkpoint


class TuneTrialContext(RunContext):
    def __init__(self, artifact_root: str, cpus: float = 1.0, verbose: bool = True, fault_at_epoch=None):
        self.fault_at_epoch = fault_at_epoch
        self.device = default_device()
        self.artifact_root = artifact_root
        self.verbose = verbose
        from bdray.runtime.ray_train import quiet_report_lines

        quiet_report_lines()
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, int(cpus)))

    def report(self, metrics, state=None):
        import ray.tune

        self.maybe_fault(metrics)
        row = {**metrics, **self.placement()}
        if state is None:
            ray.tune.report(row)
            return
        with checkpoint_folder(state) as folder:
            ray.tune.report(row, checkpoint=ray.tune.Checkpoint.from_directory(folder))

    def load_checkpoint(self):
        import ray.tune

        state = state_from_checkpoint(ray.tune.get_checkpoint(), self.device)
        self.resumed = state is not None
        return state
