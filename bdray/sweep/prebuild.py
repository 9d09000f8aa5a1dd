"""The attack artifacts a sweep's trials share, trained on cluster resources before trials start."""
from __future__ import annotations

import os
from typing import Any, List

from bdray.methods import get_method
from bdray.sweep.seeds import SEED_INDEX, VARIANT, trial_config
from bdray.sweep.spec import Sweep


def artifact_configs(sweep: Sweep) -> List[Any]:
    """The distinct backdoor configs the trials will need, when they can be known up front: the
    base one, or every combination of ``backdoor.*`` (and ``variant``) grid values, per seed replica."""
    import itertools

    base = getattr(sweep.base_config, "backdoor", None)
    uses = get_method(sweep.method).uses_backdoored_model or getattr(sweep.base_config, "der_reference", False)
    if base is None or not uses:
        return []
    keys = [k for k in sweep.search_space if k.startswith("backdoor.") or k == VARIANT]
    values = []
    for k in keys:
        domain = sweep.search_space[k]
        if not (isinstance(domain, dict) and "grid_search" in domain):
            return []  # sampled: each trial gets (or, under a lock, trains) its own
        values.append(domain["grid_search"])
    configs = {}
    for combo in itertools.product(*values):
        for index in range(sweep.seeds):  # each seed replica attacks with its own seed
            cfg = trial_config(sweep.base_config, {**dict(zip(keys, combo)), SEED_INDEX: index}).backdoor
            configs[cfg.digest()] = cfg
    return list(configs.values())


def prebuild_artifacts(sweep: Sweep) -> None:
    """Train the attack artifacts the trials share, on cluster resources, before trials start
    (in parallel when there are several)."""
    import ray

    configs = artifact_configs(sweep)
    if not configs:
        return

    def build(root, cfg_dict):
        import torch
        from bdray.methods.attack.backdoor import BackdoorConfig
        from bdray.methods.attack.threat import backdoor_artifact
        from bdray.train.context import default_device

        if not torch.cuda.is_available():
            torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        _, meta, trained = backdoor_artifact(BackdoorConfig.from_dict(cfg_dict), root, default_device())
        return meta["metrics"], trained

    remote = ray.remote(num_cpus=sweep.cpus_per_worker, num_gpus=sweep.gpus_per_worker)(build)
    futures = [remote.remote(sweep.artifact_root, cfg.to_dict()) for cfg in configs]
    for cfg, (metrics, trained) in zip(configs, ray.get(futures)):
        print(f"[bdray] attack artifact {cfg.attack} {cfg.attack_params.get('trigger_size', '')} "
              f"{'trained' if trained else 'reused'}: acc={metrics['acc']:.4f} asr={metrics['asr']:.4f}", flush=True)
