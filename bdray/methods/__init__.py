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
    from bdray.methods.attack.backdoor import BackdoorConfig
    from bdray.methods.attack.population import PopulationConfig, expand_members, train_backdoor_population
    from bdray.methods.attack.threat import train_backdoor
    from bdray.methods.detection.activation_clustering import (ActivationClusteringConfig,
                                                               train_activation_clustering)
    from bdray.methods.detection.spectral_signatures import SpectralSignaturesConfig, train_spectral_signatures
    from bdray.methods.detection.strip import STRIPConfig, train_strip
    from bdray.methods.erasing.anp import ANPConfig, train_anp
    from bdray.methods.erasing.clp import CLPConfig, train_clp
    from bdray.methods.erasing.dhbe import DHBEConfig, train_dhbe
    from bdray.methods.erasing.fineprune import FinePruneConfig, train_fineprune
    from bdray.methods.erasing.finetune import FinetuneConfig, train_finetune
    from bdray.methods.erasing.fst import FSTConfig, train_fst
    from bdray.methods.erasing.ibau import IBAUConfig, train_ibau
    from bdray.methods.erasing.nad import NADConfig, train_nad
    from bdray.methods.erasing.rnp import RNPConfig, train_rnp
    from bdray.methods.erasing.sau import SAUConfig, train_sau
    from bdray.methods.erasing.neural_cleanse import NeuralCleanseConfig, train_neural_cleanse
    from bdray.methods.erasing.no_defense import NoDefenseConfig, train_no_defense
    from bdray.methods.fairness.dba_toy import DBAToyConfig, train_dba_toy
    from bdray.methods.fairness.debias import DebiasConfig, train_debias
    from bdray.methods.training_time.abl import ABLConfig, train_abl
    from bdray.methods.training_time.cbd import CBDConfig, train_cbd
    from bdray.methods.training_time.pt import PTConfig, train_pt

    # the attack (and K of its trainings in one trial)
    METHODS.register("backdoor", MethodSpec("backdoor", BackdoorConfig, train_backdoor))
    METHODS.register("backdoor_population", MethodSpec(
        "backdoor_population", PopulationConfig, train_backdoor_population, uses_backdoored_model=False,
        members=expand_members, member_method="backdoor"))
    # post-training erasing: they start from the backdoored model
    METHODS.register("no_defense", MethodSpec("no_defense", NoDefenseConfig, train_no_defense))
    METHODS.register("dhbe", MethodSpec("dhbe", DHBEConfig, train_dhbe))
    METHODS.register("finetune", MethodSpec("finetune", FinetuneConfig, train_finetune))
    METHODS.register("fineprune", MethodSpec("fineprune", FinePruneConfig, train_fineprune))
    METHODS.register("nad", MethodSpec("nad", NADConfig, train_nad))
    METHODS.register("fst", MethodSpec("fst", FSTConfig, train_fst))
    METHODS.register("clp", MethodSpec("clp", CLPConfig, train_clp))  # data-free, like DHBE
    METHODS.register("anp", MethodSpec("anp", ANPConfig, train_anp))
    METHODS.register("ibau", MethodSpec("ibau", IBAUConfig, train_ibau))
    METHODS.register("rnp", MethodSpec("rnp", RNPConfig, train_rnp))
    METHODS.register("sau", MethodSpec("sau", SAUConfig, train_sau))
    METHODS.register("neural_cleanse", MethodSpec("neural_cleanse", NeuralCleanseConfig, train_neural_cleanse))
    # training-time defenses: they receive the poisoned training set (PT also the backdoored model)
    METHODS.register("abl", MethodSpec("abl", ABLConfig, train_abl, uses_backdoored_model=False))
    METHODS.register("pt", MethodSpec("pt", PTConfig, train_pt))
    METHODS.register("cbd", MethodSpec("cbd", CBDConfig, train_cbd, uses_backdoored_model=False))
    # poisoned-sample detectors: score the poisoned training set with the backdoored model
    METHODS.register("spectral_signatures", MethodSpec("spectral_signatures", SpectralSignaturesConfig,
                                                       train_spectral_signatures))
    METHODS.register("activation_clustering", MethodSpec("activation_clustering", ActivationClusteringConfig,
                                                         train_activation_clustering))
    METHODS.register("strip", MethodSpec("strip", STRIPConfig, train_strip))
    # fairness (DBA)
    METHODS.register("debias", MethodSpec("debias", DebiasConfig, train_debias, uses_backdoored_model=False))
    METHODS.register("dba_toy", MethodSpec("dba_toy", DBAToyConfig, train_dba_toy, uses_backdoored_model=False))


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name, field="method")


_register_builtin()
