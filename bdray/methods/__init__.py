"""Methods by name.  Each is one training-loop function ``loop(config, ctx)`` with a validated
config dataclass; the same function runs in-process and as a Ray Train worker."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

from bdray.config import Config
from bdray.registry import Registry


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type
    loop: Callable[[Config, Any], Dict[str, Any]]
    uses_backdoored_model: bool = True  # whether trials start from the attack artifact (else: from poisoned data)
    # packed methods (a population of K models per trial): ``members(cfg, metrics)`` -> [(k, member
    # config, member metrics)], and the method each member row is recorded as
    members: Optional[Callable[[Config, Dict[str, Any]], list]] = None
    member_method: str = ""

    def make_config(self, values: Dict[str, Any] | Config | None = None) -> Config:
        if isinstance(values, self.config_cls):
            return values
        return self.config_cls.from_dict(values or {})


METHODS: Registry = Registry("method")


def _register_builtin() -> None:
    from bdray.methods.abl import ABLConfig, train_abl
    from bdray.methods.backdoor import BackdoorConfig, train_backdoor
    from bdray.methods.cbd import CBDConfig, train_cbd
    from bdray.methods.dba_toy import DBAToyConfig, train_dba_toy
    from bdray.methods.debias import DebiasConfig, train_debias
    from bdray.methods.dhbe import DHBEConfig, train_dhbe

    from bdray.methods.fineprune import FinePruneConfig, train_fineprune
    from bdray.methods.finetune import FinetuneConfig, train_finetune
    from bdray.methods.nad import NADConfig, train_nad
    from bdray.methods.neural_cleanse import NeuralCleanseConfig, train_neural_cleanse
    from bdray.methods.no_defense import NoDefenseConfig, train_no_defense
    from bdray.methods.population import PopulationConfig, expand_members, train_backdoor_population
    from bdray.methods.pt import PTConfig, train_pt

    METHODS.register("backdoor", MethodSpec("backdoor", BackdoorConfig, train_backdoor))
    METHODS.register("backdoor_population", MethodSpec(
        "backdoor_population", PopulationConfig, train_backdoor_population, uses_backdoored_model=False,
        members=expand_members, member_method="backdoor"))
    METHODS.register("dhbe", MethodSpec("dhbe", DHBEConfig, train_dhbe))
    METHODS.register("finetune", MethodSpec("finetune", FinetuneConfig, train_finetune))
    METHODS.register("fineprune", MethodSpec("fineprune", FinePruneConfig, train_fineprune))
    METHODS.register("nad", MethodSpec("nad", NADConfig, train_nad))
    METHODS.register("neural_cleanse", MethodSpec("neural_cleanse", NeuralCleanseConfig, train_neural_cleanse))
    # training-time defenses: they receive the poisoned training set
    METHODS.register("no_defense", MethodSpec("no_defense", NoDefenseConfig, train_no_defense))
    METHODS.register("abl", MethodSpec("abl", ABLConfig, train_abl, uses_backdoored_model=False))
    METHODS.register("pt", MethodSpec("pt", PTConfig, train_pt))
    METHODS.register("cbd", MethodSpec("cbd", CBDConfig, train_cbd, uses_backdoored_model=False))
    # fairness (DBA)
    METHODS.register("debias", MethodSpec("debias", DebiasConfig, train_debias, uses_backdoored_model=False))
    METHODS.register("dba_toy", MethodSpec("dba_toy", DBAToyConfig, train_dba_toy, uses_backdoored_model=False))


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name, field="method")


_register_builtin()
