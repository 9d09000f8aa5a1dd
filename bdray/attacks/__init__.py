"""Attacks: pure batched trigger functions, declared parameters, poisoning."""
from bdray.attacks.poison import PoisonedSplit, poison_count, poison_split
from bdray.attacks.specs import ATTACKS, AttackParams, Trigger, attack_params, build_trigger

__all__ = ["ATTACKS", "AttackParams", "PoisonedSplit", "Trigger", "attack_params", "build_trigger",
           "poison_count", "poison_split"]
