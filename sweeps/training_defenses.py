"""Configs of the training-time defenses for the sweep scripts: the digits-sized defaults, the
papers' settings on real datasets (``.paper()``), and tiny trainings for ``--smoke-test``."""
from __future__ import annotations

from bdray.presets import method_config
from bdray.sweep.cli import budget

TRAINING_DEFENSES = ("no_defense", "abl", "pt", "cbd")

SMOKE = {
    "abl": {"isolation_epochs": 2, "clean_epochs": 1, "unlearn_epochs": 1},
    "pt": {"partial_epochs": 1, "epochs": 1},
    "cbd": {"fb_epochs": 1, "epochs": 1},
    "no_defense": {},
}


def defense_config(method: str, args, backdoor, **overrides):
    """``method``'s config against the poisoned data of ``backdoor``."""
    cfg = method_config(method, backdoor, budget(args))
    if args.smoke_test:
        cfg = cfg.replace(**SMOKE.get(method, {}))
    return cfg.replace(**overrides) if overrides else cfg
