"""Configs of the training-time defenses for the sweep scripts, from the preset table
(``bdray.presets.method_config``): the digits-sized defaults, the papers' settings with
``--budget paper``, and tiny trainings for ``--smoke-test``."""
from __future__ import annotations

from bdray.presets import method_config
from bdray.sweep.cli import budget

TRAINING_DEFENSES = ("no_defense", "abl", "pt", "cbd")

def defense_grid(name: str, defenses, space, args, backdoor) -> list:
    """One grid ``Sweep`` per defense over ``space`` (the attacks), all in the sweep folder ``name``:
    DHBE with its sweep defaults (``sweeps/dhbe_lr.dhbe_base``), every other defense from
    ``defense_config``."""
    from bdray.sweep import Sweep
    from bdray.sweep.cli import resources
    from sweeps.dhbe_lr import dhbe_base

    return [Sweep(name=name, method=defense, search_space=space, search="grid", num_samples=1,
                  base_config=dhbe_base(args, backdoor) if defense == "dhbe" else defense_config(defense, args, backdoor),
                  **resources(args)) for defense in defenses]


def defense_config(method: str, args, backdoor, **overrides):
    """``method``'s config against the poisoned data of ``backdoor``; ABL and CBD also report
    ``der`` against the backdoored model of ``backdoor`` (``der_reference``: one shared artifact)."""
    if method in ("abl", "cbd"):
        overrides.setdefault("der_reference", True)
    return method_config(method, backdoor, budget(args), smoke=args.smoke_test, **overrides)
