"""The runs a claims check needs, per seed: a clean model, the backdoored model, every method against
it, and every defense against the clean model (what a defense costs when there is no attack).

Each run is ``(label, method, config)``; labels are what the claims refer to.  Budgets:
``smoke`` (a few epochs: plumbing only), ``cpu`` (the methods' CPU-sized defaults), ``paper``
(the papers' settings of the preset table, ``bdray.presets.PAPER_SETTINGS``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from bdray.config import ConfigError
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.no_defense import NoDefenseConfig
from bdray.methods.fairness.debias import DebiasConfig
from bdray.presets import method_config

BUDGETS = ("smoke", "cpu", "paper", "paper-cpu")
# defense label -> method name (every one of them is also run against the clean model)
DEFENSES = {"dhbe": "dhbe", "dfad": "dhbe", "finetune": "finetune", "fineprune": "fineprune", "nad": "nad",
            "nad_5pct": "nad", "neural_cleanse": "neural_cleanse", "abl": "abl", "pt": "pt", "cbd": "cbd",
            "clp": "clp", "fst": "fst", "anp": "anp", "ibau": "ibau", "rnp": "rnp",
            "sau": "sau"}
COST_DEFENSES = ("dhbe", "finetune", "nad_5pct", "neural_cleanse", "abl", "pt", "cbd", "clp", "fst", "anp", "ibau",
                 "rnp", "sau")
# DBA (a fairness method) runs on attribute data: normal training, undersampling and DBA per seed
FAIRNESS_RUNS = {"dba_normal": "normal", "dba_undersampling": "undersampling", "dba": "dba"}
# poisoned-sample detectors: label -> method, and the poisoning rate each runs against where its
# paper assumes the poison is a small share of its class (1 % of a 10-class set ≈ 9 % of the target
# class; the papers poison 5-10 % of it); STRIP runs against the harness's attack as it is
DETECTORS = {"spectral_signatures": "spectral_signatures", "activation_clustering": "activation_clustering",
             "strip": "strip"}
DETECTOR_POISON_RATES = {"spectral_signatures": 0.01, "activation_clustering": 0.01}
# the attacks of issue 18, each trained (no defense) at a poisoning rate its paper uses where the data
# allow it: 10 % for LF and BppAttack (dirty label; the harness's rate), 8 % of the training set for
# the clean-label Refool (at most the target class's ~10 %), 1 % poison + 1 % covers for
# Adaptive-Blend (the paper: 0.3 % + 0.3 % of CIFAR-10's 50,000; on these small sets 0.3 % is 4-11
# images); Adaptive-Blend is also scored by the two latent-separation detectors it was built to evade
ATTACK_RUNS = {"lf": "lf", "bpp": "bpp", "adaptive_blend": "adaptive_blend", "refool": "refool"}
ATTACK_POISON_RATES = {"refool": 0.08, "adaptive_blend": 0.01}
EVASION_RUNS = {"adaptive_blend_ss": "spectral_signatures", "adaptive_blend_ac": "activation_clustering"}
METHOD_LABELS = tuple(DEFENSES) + tuple(DETECTORS) + tuple(ATTACK_RUNS) + ("dba",)

# what a label sets on its method's config (the clean share each erasing paper's defender holds)
LABEL_FIELDS: Dict[str, Dict[str, Any]] = {
    "dfad": {"lambda_abr": 0.0, "trigger_generator": False},
    "finetune": {"clean_fraction": 0.04}, "fineprune": {"clean_fraction": 0.04}, "nad": {"clean_fraction": 0.04},
    "nad_5pct": {"clean_fraction": 0.05}, "neural_cleanse": {"clean_fraction": 0.05},
}

Run = Tuple[str, str, Any]


def defense_config(label: str, backdoor: BackdoorConfig, budget: str, seed: int):
    """The config of defense ``label`` against ``backdoor`` at ``budget``."""
    if label not in DEFENSES:
        raise ConfigError("methods", label, f"one of {sorted(DEFENSES)}")
    fields = dict(LABEL_FIELDS.get(label, {}))
    if budget == "paper-cpu":  # the paper's clean count (presets.PAPER_CLEAN_SHARES), not the label's
        fields.pop("clean_fraction", None)
    return method_config(DEFENSES[label], backdoor, budget, seed=seed, **fields)


def fairness_config(strategy: str, budget: str, seed: int, attributes: Optional[Dict[str, Any]] = None) -> DebiasConfig:
    """DBA's comparison on attribute data (``attributes``: ``dataset``, ``data_root``; default the
    embedded biased digits): the CPU defaults, the paper's training on the face sets at ``paper``."""
    values = {"dataset": "digits_biased", **(attributes or {}), "strategy": strategy, "seed": seed}
    faces = values["dataset"] in ("celeba", "utkface")
    return method_config("debias", budget=budget if faces or budget == "smoke" else "cpu", **values)


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
    detectors = [label for label in chosen if label in DETECTORS]
    attacks = [label for label in chosen if label in ATTACK_RUNS]
    out: List[Tuple[int, Run]] = []
    for seed in seeds:
        attacked = backdoor.replace(seed=seed)
        if budget == "smoke":
            attacked = attacked.replace(epochs=3)
        clean = attacked.replace(poison_rate=0.0)
        if defenses or attacks:
            out.append((seed, ("clean", "no_defense", NoDefenseConfig(backdoor=clean, seed=seed))))
        if defenses:
            out.append((seed, ("backdoor", "no_defense", NoDefenseConfig(backdoor=attacked, seed=seed))))
        for label in defenses:
            out.append((seed, (label, DEFENSES[label], defense_config(label, attacked, budget, seed))))
        if clean_cost:
            for label in defenses:
                if label in COST_DEFENSES:
                    out.append((seed, (f"{label}@clean", DEFENSES[label], defense_config(label, clean, budget, seed))))
        for label in detectors:
            target = attacked.replace(poison_rate=DETECTOR_POISON_RATES.get(label, attacked.poison_rate))
            out.append((seed, (label, DETECTORS[label], method_config(DETECTORS[label], target, budget, seed=seed))))
        for label in attacks:
            other = attacked.replace(attack=ATTACK_RUNS[label],
                                     poison_rate=ATTACK_POISON_RATES.get(label, attacked.poison_rate))
            out.append((seed, (label, "no_defense", NoDefenseConfig(backdoor=other, seed=seed))))
            if label == "adaptive_blend":
                for evasion, detector in EVASION_RUNS.items():
                    out.append((seed, (evasion, detector, method_config(detector, other, budget, seed=seed))))
        if "dba" in chosen:
            for label, strategy in FAIRNESS_RUNS.items():
                out.append((seed, (label, "debias", fairness_config(strategy, budget, seed, attributes))))
    return out


def summary_of(cfg) -> Dict[str, Any]:
    """The settings a claims table prints for a run (dataset/model/attack and the budget fields)."""
    threat = getattr(cfg, "backdoor", cfg)
    return {"dataset": threat.dataset, "model": threat.model, "attack": threat.attack,
            "poison_rate": threat.poison_rate, "backdoor_epochs": threat.epochs}
