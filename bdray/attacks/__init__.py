"""Attacks: pure batched trigger functions, declared parameters, poisoning."""
from bdray.attacks.poison import PoisonedSplit, poison_count, poison_split
from bdray.attacks.specs import ATTACKS, AttackParams, Trigger, attack_params, build_trigger
from bdray.attacks import surrogate as _surrogate_attacks  # noqa: F401  (registers trojan, clean_label)
from bdray.attacks import input_aware as _input_aware  # noqa: F401  (registers input_aware)
from bdray.attacks import low_frequency as _low_frequency  # noqa: F401  (registers lf)
from bdray.attacks import bpp as _bpp  # noqa: F401  (registers bpp)
from bdray.attacks import adaptive_blend as _adaptive_blend  # noqa: F401  (registers adaptive_blend)
from bdray.attacks import refool as _refool  # noqa: F401  (registers refool)

__all__ = ["ATTACKS", "AttackParams", "PoisonedSplit", "Trigger", "attack_params", "build_trigger",
           "poison_count", "poison_split"]
