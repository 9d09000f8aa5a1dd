"""Attacks: pure batched trigger functions, declared parameters, poisoning."""
from bdray.attacks.poison import PoisonedSplit, poison_count, poison_split
from bdray.attacks.specs import ATTACKS, AttackParams, Trigger, attack_params, build_trigger
from bdray.attacks import surrogate as _surrogate_attacks  # noqa: F401  (registers trojan, clean_label)
from bdray.attacks import input_aware as _input_aware  # noqa: F401  (registers input_aware)

__all__ = ["ATTACKS", "AttackParams", "PoisonedSplit", "Trigger", "attack_params", "build_trigger",
           "poison_count", "poison_split"]
