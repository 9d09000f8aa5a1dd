"""The runs a claims check needs, per seed: a clean model, the backdoored model, every method against
it, and every defense against the clean model (what a defense costs when there is no attack).

Each run is ``(label, method, config)``; labels are what the claims refer to.  Budgets:
``smoke`` (a few epochs: plumbing only), ``cpu`` (the methods' CPU-sized defaults), ``paper``
(the papers' settings where a ``paper()`` exists).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from bdray.config import ConfigError
from bdray.methods.training_time.abl import ABLConfig
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.training_time.cbd import CBDConfig
from bdray.methods.fairness.debias import DebiasConfig
from bdray.methods.erasing.dhbe import DHBEConfig
from bdray.methods.erasing.fineprune import FinePruneConfig
from bdray.methods.erasing.finetune import FinetuneConfig
from bdray.methods.erasing.nad import NADConfig
from bdray.methods.erasing.neural_cleanse import NeuralCleanseConfig
from bdray.methods.erasing.no_defense import NoDefenseConfig
from bdray.methods.training_time.pt import PTConfig
from bdray.presets import method_config

BUDGETS = ("smoke", "cpu", "paper")
# defense label -> method name (every one of them is also run against the clean model)
DEFENSES = {"dhbe": "dhbe", "dfad": "dhbe", "finetune": "finetune", "fineprune": "fineprune", "nad": "nad",
            "nad_5pct": "nad", "neural_cleanse": "neural_cleanse", "abl": "abl", "pt": "pt", "cbd": "cbd"}
COST_DEFENSES = ("dhbe", "finetune", "nad_5pct", "neural_cleanse", "abl", "pt", "cbd")
# DBA (a fairness method) runs on attribute data: normal training, undersampling and DBA per seed
FAIRNESS_RUNS = {"dba_normal": "normal", "dba_undersampling": "undersampling", "dba": "dba"}
METHOD_LABELS = tuple(DEFENSES) + ("dba",)

Run = Tuple[str, str, Any]


def _smoke(label: str, cfg):
    """A few epochs of everything: checks the plumbing, not the science."""
    if isinstance(cfg, DHBEConfig):
        return cfg.replace(epochs=2, iters_per_epoch=3, batch_size=32)
    if isinstance(cfg, ABLConfig):
        return cfg.replace(isolation_epochs=2, clean_epochs=1, unlearn_epochs=1)
    if isinstance(cfg, PTConfig):
        return cfg.replace(partial_epochs=1, epochs=1)
    if isinstance(cfg, CBDConfig):
        return cfg.replace(fb_epochs=1, epochs=2)
    if isinstance(cfg, (FinetuneConfig, FinePruneConfig, NADConfig, NeuralCleanseConfig)):
        extra = {"nc_steps": 20} if isinstance(cfg, NeuralCleanseConfig) else {}
        return cfg.replace(epochs=2, samples_per_epoch=128, **extra)
    return cfg


def defense_config(label: str, backdoor: BackdoorConfig, budget: str, seed: int):
    """The config of defense ``label`` against ``backdoor`` at ``budget``."""
    if label in ("dhbe", "dfad", "abl", "pt", "cbd"):  # each paper() at the paper budget, else defaults + preset
        cfg = method_config("dhbe" if label == "dfad" else label, backdoor, budget)
        if label == "dfad":
            cfg = cfg.replace(lambda_abr=0.0, trigger_generator=False)
    elif label == "finetune":
        cfg = FinetuneConfig(backdoor=backdoor, clean_fraction=0.04)
    elif label == "fineprune":
        cfg = FinePruneConfig(backdoor=backdoor, clean_fraction=0.04)
    elif label == "nad":
        cfg = NADConfig(backdoor=backdoor, clean_fraction=0.04)
    elif label == "nad_5pct":
        cfg = NADConfig(backdoor=backdoor, clean_fraction=0.05)
    elif label == "neural_cleanse":
        cfg = NeuralCleanseConfig(backdoor=backdoor, clean_fraction=0.05)
    else:
        raise ConfigError("methods", label, f"one of {sorted(DEFENSES)}")
    cfg = cfg.replace(seed=seed)
    return _smoke(label, cfg) if budget == "smoke" else cfg


def fairness_config(strategy: str, budget: str, seed: int, attributes: Optional[Dict[str, Any]] = None) -> DebiasConfig:
    """DBA's comparison on attribute data (``attributes``: ``dataset``, ``data_root``; default the
    embedded biased digits): the CPU defaults, the paper's training on the face sets at ``paper``."""
    values = {"dataset": "digits_biased", **(attributes or {}), "strategy": strategy, "seed": seed}
    faces = values["dataset"] in ("celeba", "utkface")
    cfg = DebiasConfig.paper(**values) if faces and budget == "paper" else DebiasConfig(**values)
    return cfg.replace(epochs=2) if budget == "smoke" else cfg


def plan(backdoor: BackdoorConfig, seeds: List[int], budget: str, methods: Optional[List[str]] = None,
         clean_cost: bool = True, attributes: Optional[Dict[str, Any]] = None) -> List[Tuple[int, Run]]:
    """Every ``(seed, (label, method, config))`` a claims check runs."""
    if budget not in BUDGETS:
        raise ConfigError("budget", budget, f"one of {BUDGETS}")
    chosen = list(METHOD_LABELS) if not methods else list(methods)
    for label in chosen:
        if label not in METHOD_LABELS:
            raise ConfigError("methods", label, f"one of {sorted(METHOD_LABELS)}")
    defenses = [label for label in chosen if label in DEFENSES]
    out: List[Tuple[int, Run]] = []
    for seed in seeds:
        if defenses:
            attacked = backdoor.replace(seed=seed)
            if budget == "smoke":
                attacked = attacked.replace(epochs=3)
            clean = attacked.replace(poison_rate=0.0)
            out.append((seed, ("clean", "no_defense", NoDefenseConfig(backdoor=clean, seed=seed))))
            out.append((seed, ("backdoor", "no_defense", NoDefenseConfig(backdoor=attacked, seed=seed))))
        for label in defenses:
            out.append((seed, (label, DEFENSES[label], defense_config(label, attacked, budget, seed))))
        if clean_cost:
            for label in defenses:
                if label in COST_DEFENSES:
                    out.append((seed, (f"{label}@clean", DEFENSES[label], defense_config(label, clean, budget, seed))))
        if "dba" in chosen:
            for label, strategy in FAIRNESS_RUNS.items():
                out.append((seed, (label, "debias", fairness_config(strategy, budget, seed, attributes))))
    return out


def summary_of(cfg) -> Dict[str, Any]:
    """The settings a claims table prints for a run (dataset/model/attack and the budget fields)."""
    threat = getattr(cfg, "backdoor", cfg)
    return {"dataset": threat.dataset, "model": threat.model, "attack": threat.attack,
            "poison_rate": threat.poison_rate, "backdoor_epochs": threat.epochs}
