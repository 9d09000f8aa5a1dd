"""Run a method's loop as Ray Train workers (``TorchTrainer``; CPU or GPU, 1..N workers, DDP)."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional

import torch

from bdray.config import Config
from bdray.train.context import RunContext, checkpoint_folder, state_from_checkpoint


TRAIN_LOG_LEVEL = os.environ.get("BDRAY_TRAIN_LOG_LEVEL", "WARNING")  # INFO brings Ray Train's lines back


class RayTrainContext(RunContext):
    """The context of one Ray Train worker: rank, device, DDP, ``ray.train.report``."""

    def __init__(self, artifact_root: str, verbose: bool = True, fault_at_epoch=None):
        import ray.train
        import ray.train.torch

        tc = ray.train.get_context()
        self.rank = tc.get_world_rank()
        self.world_size = tc.get_world_size()
        self.device = ray.train.torch.get_device()
        self.artifact_root = artifact_root
        self.verbose = verbose
        self.fault_at_epoch = fault_at_epoch
        if self.device.type == "cpu":
            # Ray sets OMP_NUM_THREADS to the worker's CPU reservation; follow it.
            torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))

    def prepare_model(self, model):
        import ray.train.torch

        # broadcast_buffers=False: DHBE runs the student several times before one backward,
        # and an in-place BN-buffer broadcast between those forwards would break autograd.
        return ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"broadcast_buffers": False})

    def report(self, metrics, state=None):
        import ray.train

        self.maybe_fault(metrics)
        row = {**metrics, **self.placement()}
        if state is not None and self.is_main:
            with checkpoint_folder(state) as folder:
                ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(row)
        if self.verbose and self.is_main:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            self.emit(f"[bdray] epoch {metrics.get('epoch')}: {shown}")

    def emit(self, line: str) -> None:
        # Ray Train patches print() to log *and* echo, which shows every line twice; log once.
        logging.getLogger("bdray").info(line)

    def load_checkpoint(self):
        import ray.train

        state = state_from_checkpoint(ray.train.get_checkpoint(), self.device)
        self.resumed = state is not None
        return state


def quiet_report_lines() -> None:
    """Ray Train V2 logs each report ("Reporting training result ...", the whole metrics dict) on a
    logger named by its module's file path, outside ``ray.train`` and so outside ``LoggingConfig``:
    hold it at ``TRAIN_LOG_LEVEL`` too (a no-op where Ray's layout differs).  So is the storage
    logger that says "Checkpoint successfully created" on every ``ray.tune.report`` of a trial run
    inside its Tune trial (``executor="tune"``)."""
    logging.getLogger("ray.train._internal.storage").setLevel(TRAIN_LOG_LEVEL)
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:
        return
    logging.getLogger(train_context.__file__).setLevel(TRAIN_LOG_LEVEL)


def train_worker(loop_config: Dict[str, Any]) -> None:
    """The per-worker entry point: run the method's loop on the validated config."""
    from bdray.methods import get_method

    quiet_report_lines()
    spec = get_method(loop_config["method"])
    cfg = loop_config["config"]
    ctx = RayTrainContext(loop_config["artifact_root"], loop_config.get("verbose", True),
                          loop_config.get("fault_at_epoch"))
    spec.loop(cfg, ctx)


REPORT_POLL_ENV, REPORT_POLL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25"


def run_ray_train(method: str, config: Config, *, artifact_root: str, storage_path: str, name: str,
                  num_workers: int = 1, use_gpu: bool = False, cpus_per_worker: float = 1.0,
                  gpus_per_worker: float | None = None, max_failures: int = 0,
                  callbacks: Optional[List[Any]] = None, verbose: bool = True, fault_at_epoch: Optional[int] = None,
                  checkpoints_to_keep: Optional[int] = 1):
    """Run ``method`` with ``config`` under a ``TorchTrainer``; returns the ``ray.train.Result``.

    Re-running with the same ``name`` and ``storage_path`` resumes from the run's last checkpoint.
    ``checkpoints_to_keep=None`` keeps every epoch's (then ``result.metrics_dataframe`` has every
    report; Train V2 builds it from the kept checkpoints).
    """
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from bdray.methods import get_method

    config = get_method(method).make_config(config)  # validated before any Ray work
    # Train V2's controller collects each worker's report when it polls (every 2 s by default) and
    # a worker holds one report at a time: with short epochs every report then waits for the next
    # poll (a 10-epoch digits run took 34 s instead of 18 s).  Poll often unless told otherwise;
    # the variable is passed on to the controller and workers.
    os.environ.setdefault(REPORT_POLL_ENV, REPORT_POLL_S)
    resources = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = gpus_per_worker if gpus_per_worker is not None else 1.0
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"method": method, "config": config, "artifact_root": str(artifact_root),
                           "verbose": verbose, "fault_at_epoch": fault_at_epoch},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name=name, storage_path=str(storage_path),
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=checkpoints_to_keep), callbacks=callbacks,
                             # Ray Train's own INFO lines (a "Reporting training result ..." with the whole
                             # metrics dict and a "Checkpoint successfully created" per report, worker-group
                             # start-up) stay in its log files; bdray prints one compact line per report
                             logging_config=LoggingConfig(log_level=TRAIN_LOG_LEVEL)),
    )
    return trainer.fit()
