"""The papers' claims, each judged on the measured runs of every seed.

A claim is judged per seed (``holds`` there or not); over seeds it **holds** when it holds on every
seed, is **weak** when it holds on at least half, and **fails** otherwise.  A collapsed model (one
class predicted for ≥ 90 % of the clean test set) fails every claim it takes part in, however low
its ``asr``.  Amplified-trigger ASRs are judged against the clean model's on the same data and seed
(on 32×32 colour images nine pasted patches fool even a clean model).  ``asr`` thresholds are
likewise read as "at most the threshold, or at most the clean model's ``asr`` + 0.05 where the clean
model itself is above it" -- a model with 55 % accuracy sends some triggered images to the target
class by mistake; the clean model's value is printed beside every such number.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, List, Optional

import numpy as np

Runs = Dict[str, Dict[str, float]]  # label -> metrics of one seed


@dataclasses.dataclass(frozen=True)
class Claim:
    name: str
    text: str
    needs: tuple                                  # labels that must have run
    check: Callable[[Runs], Optional[bool]]       # one seed's verdict
    measure: Callable[[Runs], Dict[str, float]]   # the numbers shown beside it


def _m(runs: Runs, label: str, key: str) -> float:
    return float(runs.get(label, {}).get(key, math.nan))


def _alive(runs: Runs, *labels: str) -> bool:
    return all(_m(runs, lab, "collapsed") != 1.0 for lab in labels)


def _asr_ok(runs: Runs, label: str, threshold: float) -> bool:
    return _m(runs, label, "asr") <= max(threshold, _m(runs, "clean", "asr") + 0.05)


def _drop(runs: Runs, label: str, reference: str = "backdoor") -> float:
    return _m(runs, reference, "acc") - _m(runs, label, "acc")


def _amplified_ok(runs: Runs, label: str, margin: float = 0.10) -> bool:
    return all(_m(runs, label, f"asr_x{k}") <= _m(runs, "clean", f"asr_x{k}") + margin for k in (4, 9))


def _erasing_claim(label: str, asr: float, drop: float, extra=None) -> Callable[[Runs], bool]:
    def check(r: Runs) -> bool:
        ok = _alive(r, label) and _asr_ok(r, label, asr) and _drop(r, label) <= drop
        return ok and (extra(r) if extra else True)
    return check


def _measure(label: str, *keys: str) -> Callable[[Runs], Dict[str, float]]:
    def measure(r: Runs) -> Dict[str, float]:
        out = {f"{label}.{k}": _m(r, label, k) for k in keys}
        out[f"{label}.acc_drop"] = _drop(r, label)
        return out
    return measure


def _incomplete_erasing(r: Runs) -> Optional[bool]:
    ok = [_m(r, lab, "asr_x9") >= _m(r, lab, "asr") + 0.2 for lab in ("finetune", "fineprune", "nad") if lab in r]
    return any(ok) if ok else None


def _clean_cost(r: Runs) -> Dict[str, float]:
    return {f"{lab.split('@')[0]}.acc_cost": _m(r, "clean", "acc") - _m(r, lab, "acc") for lab in r if lab.endswith("@clean")}


def _detection_claim(label: str, tpr: float, auroc: float = 0.0, fpr: float = 1.0) -> Callable[[Runs], bool]:
    """There was a backdoor to find (undefended ASR ≥ 0.5) and the detector found it."""
    def check(r: Runs) -> bool:
        return (_m(r, label, "undefended_asr") >= 0.5 and _m(r, label, "detection_tpr") >= tpr
                and _m(r, label, "detection_auroc") >= auroc and _m(r, label, "detection_fpr") <= fpr)
    return check


def _measure_detection(label: str, *extra: str) -> Callable[[Runs], Dict[str, float]]:
    keys = ("undefended_asr", "detection_tpr", "detection_fpr", "detection_auroc", *extra)
    return lambda r: {f"{label}.{k}": _m(r, label, k) for k in keys}


def _attack_claim(label: str, asr: float, drop: float = 0.02) -> Callable[[Runs], bool]:
    """The attack implants a backdoor (asr at least ``asr``) at a small accuracy cost."""
    return lambda r: _alive(r, label) and _m(r, label, "asr") >= asr and _drop(r, label, "clean") <= drop


def _measure_attack(label: str) -> Callable[[Runs], Dict[str, float]]:
    return lambda r: {f"{label}.asr": _m(r, label, "asr"), f"{label}.acc": _m(r, label, "acc"),
                      "clean.acc": _m(r, "clean", "acc"), f"{label}.acc_drop": _drop(r, label, "clean")}


CLAIMS: List[Claim] = [
    Claim("backdoor", "BadNets: asr ≥ 0.95, acc within 2 points of the clean model", ("clean", "backdoor"),
          lambda r: _alive(r, "backdoor") and _m(r, "backdoor", "asr") >= 0.95 and _drop(r, "backdoor", "clean") <= 0.02,
          lambda r: {"backdoor.asr": _m(r, "backdoor", "asr"), "backdoor.acc": _m(r, "backdoor", "acc"),
                     "clean.acc": _m(r, "clean", "acc"), "clean.asr": _m(r, "clean", "asr"),
                     "clean.asr_x4": _m(r, "clean", "asr_x4"), "clean.asr_x9": _m(r, "clean", "asr_x9")}),
    Claim("dhbe", "DHBE: asr ≤ 0.05, acc drop ≤ 2 points, asr_x4/x9 ≤ clean model's + 0.10", ("clean", "backdoor", "dhbe"),
          _erasing_claim("dhbe", 0.05, 0.02, lambda r: _amplified_ok(r, "dhbe")),
          _measure("dhbe", "acc", "asr", "asr_x4", "asr_x9")),
    Claim("dfad_worse", "DFAD (λ = 0, no trigger generator) clearly worse than DHBE on asr (by ≥ 0.10)",
          ("dhbe", "dfad"), lambda r: _m(r, "dfad", "asr") >= _m(r, "dhbe", "asr") + 0.10,
          _measure("dfad", "acc", "asr")),
    Claim("incomplete_erasing", "blind baselines at 4 % clean data: one of FT/FP/NAD has asr_x9 ≥ its asr + 0.2",
          ("finetune", "fineprune", "nad"), _incomplete_erasing,
          lambda r: {f"{lab}.{k}": _m(r, lab, k) for lab in ("finetune", "fineprune", "nad") for k in ("asr", "asr_x9")}),
    Claim("nad", "NAD with 5 % clean data: asr ≤ 0.20, acc drop ≤ 3 points", ("backdoor", "nad_5pct"),
          _erasing_claim("nad_5pct", 0.20, 0.03), _measure("nad_5pct", "acc", "asr")),
    Claim("neural_cleanse", "Neural Cleanse (known target): asr ≤ 0.10", ("backdoor", "neural_cleanse"),
          _erasing_claim("neural_cleanse", 0.10, 1.0), _measure("neural_cleanse", "acc", "asr")),
    Claim("abl", "ABL: isolation precision ≥ 0.8, asr ≤ 0.10, acc drop ≤ 3 points", ("backdoor", "abl"),
          _erasing_claim("abl", 0.10, 0.03, lambda r: _m(r, "abl", "isolation_precision") >= 0.8),
          _measure("abl", "acc", "asr", "isolation_precision")),
    Claim("pt", "PT: asr ≤ 0.05, acc drop ≤ 3 points, isolation precision with M′ above M_s's", ("backdoor", "pt"),
          _erasing_claim("pt", 0.05, 0.03, lambda r: _m(r, "pt", "isolation_precision") > _m(r, "pt", "base_isolation_precision")),
          _measure("pt", "acc", "asr", "isolation_precision", "base_isolation_precision")),
    Claim("cbd", "CBD: asr ≤ 0.10, acc drop ≤ 3 points", ("backdoor", "cbd"),
          _erasing_claim("cbd", 0.10, 0.03), _measure("cbd", "acc", "asr", "mean_weight_poisoned")),
    Claim("spectral_signatures", "Spectral Signatures, BadNets with ≈ 9 % of the target class poisoned "
          "(poison_rate 0.01): detection TPR ≥ 0.9 and AUROC ≥ 0.9", ("spectral_signatures",),
          _detection_claim("spectral_signatures", tpr=0.9, auroc=0.9),
          _measure_detection("spectral_signatures", "epsilon_used")),
    Claim("activation_clustering", "Activation Clustering, BadNets with ≈ 9 % of the target class poisoned: "
          "detection TPR ≥ 0.9 at FPR ≤ 0.10", ("activation_clustering",),
          _detection_claim("activation_clustering", tpr=0.9, fpr=0.10),
          _measure_detection("activation_clustering")),
    Claim("strip", "STRIP (FRR preset 1 %) as a test-time filter: ≥ 0.95 of the triggered inputs rejected, "
          "≤ 0.05 of the clean ones", ("strip",),
          lambda r: (_m(r, "strip", "undefended_asr") >= 0.5 and _m(r, "strip", "strip_test_tpr") >= 0.95
                     and _m(r, "strip", "strip_test_fpr") <= 0.05),
          lambda r: {f"strip.{k}": _m(r, "strip", k) for k in ("undefended_asr", "strip_test_tpr", "strip_test_fpr",
                                                               "detection_tpr", "detection_fpr")}),
    Claim("clp", "CLP (data-free, u = 3): asr ≤ 0.10, acc drop ≤ 3 points", ("backdoor", "clp"),
          _erasing_claim("clp", 0.10, 0.03), _measure("clp", "acc", "asr", "pruned_channels")),
    Claim("fst", "FST (2 % clean data): asr ≤ 0.10, acc drop ≤ 3 points", ("backdoor", "fst"),
          _erasing_claim("fst", 0.10, 0.03), _measure("fst", "acc", "asr")),
    # ANP Table 1 (BadNets, ResNet-18): 93.73 / 100 -> 90.20 / 0.45 with 1 % clean data, threshold 0.2
    Claim("anp", "ANP (1 % clean, ε 0.4, threshold 0.2): asr ≤ 0.10, acc drop ≤ 4 points", ("backdoor", "anp"),
          _erasing_claim("anp", 0.10, 0.04), _measure("anp", "acc", "asr", "pruned_neurons")),
    # I-BAU: the authors' CIFAR-10 notebook, BadNets on a small VGG: 84.94 / 97.64 -> 81.08 / 12.32 after one round
    Claim("ibau", "I-BAU (5 % clean, 5 rounds, K = 5): asr ≤ 0.15, acc drop ≤ 4 points", ("backdoor", "ibau"),
          _erasing_claim("ibau", 0.15, 0.04), _measure("ibau", "acc", "asr")),
    # RNP Table 1 (BadNets, ResNet-18, 1 % clean): ASR 100 -> below 1 % at a drop of a few points
    Claim("rnp", "RNP (1 % clean, threshold 0.2): asr ≤ 0.10, acc drop ≤ 5 points", ("backdoor", "rnp"),
          _erasing_claim("rnp", 0.10, 0.05), _measure("rnp", "acc", "asr", "pruned_neurons", "unlearned_asr")),
    # SAU's headline (PreAct-ResNet18, CIFAR-10, 5 % clean): the ASR of BadNets and the other attacks of its
    # main table down to a few percent at a cost of a few points
    Claim("sau", "SAU (5 % clean, PGD 5 × 0.2, 100 rounds): asr ≤ 0.10, acc drop ≤ 4 points", ("backdoor", "sau"),
          _erasing_claim("sau", 0.10, 0.04), _measure("sau", "acc", "asr")),
    Claim("lf", "LF (smooth universal perturbation, 10 %): asr ≥ 0.90, acc within 2 points of the clean model",
          ("clean", "lf"), _attack_claim("lf", 0.90), _measure_attack("lf")),
    Claim("bpp", "BppAttack (3-bit dithered quantisation + negatives, 10 %): asr ≥ 0.90, acc within 2 points",
          ("clean", "bpp"), _attack_claim("bpp", 0.90), _measure_attack("bpp")),
    Claim("refool", "Refool (clean label, 8 %): asr ≥ 0.60, acc within 2 points", ("clean", "refool"),
          _attack_claim("refool", 0.60), _measure_attack("refool")),
    Claim("adaptive_blend", "Adaptive-Blend (1 % + 1 % covers): asr ≥ 0.60, acc within 2 points, and both "
          "Spectral Signatures and Activation Clustering find at most half of its poison (TPR ≤ 0.5)",
          ("clean", "adaptive_blend", "adaptive_blend_ss", "adaptive_blend_ac"),
          lambda r: (_attack_claim("adaptive_blend", 0.60)(r) and _m(r, "adaptive_blend_ss", "detection_tpr") <= 0.5
                     and _m(r, "adaptive_blend_ac", "detection_tpr") <= 0.5),
          lambda r: {**_measure_attack("adaptive_blend")(r),
                     **{f"{lab}.{k}": _m(r, lab, k) for lab in ("adaptive_blend_ss", "adaptive_blend_ac")
                        for k in ("detection_tpr", "detection_auroc")}}),
    Claim("dba", "DBA: equal-opportunity gap (opp) at most half of normal training's, eacc ≥ undersampling's",
          ("dba_normal", "dba_undersampling", "dba"),
          lambda r: (_alive(r, "dba") and _m(r, "dba", "opp") <= 0.5 * _m(r, "dba_normal", "opp")
                     and _m(r, "dba", "eacc") >= _m(r, "dba_undersampling", "eacc")),
          lambda r: {f"{lab}.{k}": _m(r, lab, k) for lab in ("dba_normal", "dba_undersampling", "dba")
                     for k in ("acc", "eacc", "opp")}),
    Claim("clean_cost", "every defense on a clean model costs ≤ 3 points of accuracy", ("clean",),
          lambda r: (all(v <= 0.03 for v in _clean_cost(r).values()) if _clean_cost(r) else None), _clean_cost),
]


def verdict(per_seed: List[Optional[bool]]) -> str:
    judged = [v for v in per_seed if v is not None]
    if not judged:
        return "not run"
    if all(judged):
        return "holds"
    return "weak" if sum(judged) * 2 >= len(judged) else "fails"


def _stats(values: List[float]) -> Dict[str, object]:
    finite = [v for v in values if not math.isnan(v)]
    return {"mean": float(np.mean(finite)) if finite else math.nan,
            "sd": float(np.std(finite)) if len(finite) > 1 else 0.0, "values": values}


def judge(by_seed: Dict[int, Runs]) -> List[Dict[str, object]]:
    """One row per claim: verdict, seeds held, and every measured number as mean ± sd over seeds."""
    rows = []
    for claim in CLAIMS:
        seeds = [s for s, runs in sorted(by_seed.items()) if all(lab in runs for lab in claim.needs)]
        per_seed = [claim.check(by_seed[s]) for s in seeds]
        numbers: Dict[str, List[float]] = {}
        for s in seeds:
            for k, v in claim.measure(by_seed[s]).items():
                numbers.setdefault(k, []).append(v)
        rows.append({"claim": claim.name, "text": claim.text, "verdict": verdict(per_seed),
                     "seeds_held": f"{sum(bool(v) for v in per_seed)}/{len([v for v in per_seed if v is not None])}",
                     "measured": {k: _stats(v) for k, v in numbers.items()}})
    return rows
