"""One trial of a sweep: the Tune trainable builds the trial's config from the sweep's base config
and the sampled parameters, then runs the method -- as a Ray Train run (every report forwarded to
Tune) or, with ``executor="tune"``, inside the Tune trial itself."""
from __future__ import annotations

from typing import Any, Dict

from bdray.methods import get_method
from bdray.sweep import storage as S
from bdray.sweep.seeds import trial_config
from bdray.sweep.spec import Sweep


def trial_payload(sweep: Sweep) -> Dict[str, Any]:
    """What every trial needs to know of the sweep (it travels to the trials pickled; the base
    config as the validated object, not rebuilt from a dict)."""
    return {"method": sweep.method, "base_config": sweep.base_config, "root": sweep.root,
            "artifact_root": sweep.artifact_root, "workers_per_trial": sweep.workers_per_trial,
            "cpus_per_worker": sweep.cpus_per_worker, "gpus_per_worker": sweep.gpus_per_worker,
            "verbose": sweep.verbose, "executor": sweep.executor, "trial_retries": sweep.trial_retries,
            "fault_at_epoch": sweep.fault_at_epoch}


def sweep_trial(params: Dict[str, Any], sweep: Dict[str, Any]) -> None:
    """The Tune trainable: build the trial's config and run it as a Ray Train run, forwarding
    every report to Tune."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from bdray.runtime.ray_train import run_ray_train

    spec = get_method(sweep["method"])
    cfg = trial_config(sweep["base_config"], params)
    if sweep.get("executor") == "tune":
        from bdray.runtime.tune_trial import TuneTrialContext

        spec.loop(cfg, TuneTrialContext(sweep["artifact_root"], sweep["cpus_per_worker"], sweep["verbose"],
                                        sweep.get("fault_at_epoch")))
        return
    trial_id = ray.tune.get_context().get_trial_id()
    run_ray_train(sweep["method"], cfg, artifact_root=sweep["artifact_root"],
                  storage_path=S.join(sweep["root"], "train"), name=trial_id,
                  num_workers=sweep["workers_per_trial"], use_gpu=sweep["gpus_per_worker"] > 0,
                  cpus_per_worker=sweep["cpus_per_worker"], gpus_per_worker=sweep["gpus_per_worker"] or None,
                  max_failures=sweep.get("trial_retries", 0),  # a lost worker (spot node) restarts from the checkpoint
                  callbacks=[TuneReportCallback()], verbose=sweep["verbose"], fault_at_epoch=sweep.get("fault_at_epoch"))
