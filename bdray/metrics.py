"""Backdoor metrics, exactly as ``methods.md`` §0 defines them.

- ``acc``: clean accuracy over the whole clean test set.
- ``asr``: over test images whose true label is not the target, with the trigger, the
  fraction predicted as the target.
- ``asr_cond``: the same, restricted to images the model classifies correctly when clean
  (DHBE Eq. 9).
- ``ra``: over the same triggered non-target images, the fraction predicted as the true label.
- ``asr_x4``/``asr_x9``: ``asr`` with the patch pasted 4 / 9 times (patch triggers only).
- ``der``: BackdoorBench's defense effectiveness rating against the backdoored model (``acc_before``,
  ``asr_before``): (max(0, ΔASR) − max(0, ΔACC) + 1) / 2 with ΔASR = asr_before − asr and
  ΔACC = acc_before − acc; 1 = the backdoor removed at no accuracy cost, 0.5 = nothing changed.
- ``val_<metric>``: the same metric on the validation split (held out of the training data) when
  the run has one (``BackdoorConfig.val_fraction`` > 0): what sweeps choose on, so that no choice
  reads the test split.
- ``collapsed``: 1 when the model's clean predictions collapsed onto one class (its share of the
  predictions, ``pred_majority_share``, is at least ``COLLAPSE_SHARE``): such a model has ``asr`` ≈ 0
  and is no defense; tables, Pareto fronts and the claims harness treat it as a failure.
"""
from __future__ import annotations

import math
from typing import Dict

import torch

from bdray.attacks.specs import Trigger
from bdray.data.batches import batched_logits
from bdray.data.splits import Split, to_float

METRIC_NAMES = ("acc", "asr", "asr_cond", "ra", "asr_x4", "asr_x9", "collapsed")
COLLAPSE_SHARE = 0.9
# How much the model reacts to the trigger (DHBE Fig. 7): mean over non-target test images of the
# L1 / L2 norm of (activation on triggered image − activation on clean image).
ACTIVATION_NAMES = ("act_l1_penultimate", "act_l2_penultimate", "act_l1_logits", "act_l2_logits")


def _mean(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else math.nan


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return _mean(pred == labels)


def attack_success_rate(pred_triggered: torch.Tensor, labels: torch.Tensor, target: int) -> float:
    keep = labels != target
    return _mean(pred_triggered[keep] == target)


def conditional_asr(pred_clean: torch.Tensor, pred_triggered: torch.Tensor, labels: torch.Tensor, target: int) -> float:
    keep = (labels != target) & (pred_clean == labels)
    return _mean(pred_triggered[keep] == target)


def robust_accuracy(pred_triggered: torch.Tensor, labels: torch.Tensor, target: int) -> float:
    keep = labels != target
    return _mean(pred_triggered[keep] == labels[keep])


def majority_share(pred: torch.Tensor) -> float:
    """Share of ``pred`` taken by its most frequent class."""
    return float(torch.bincount(pred).max()) / len(pred) if len(pred) else math.nan


def backdoor_metrics(pred_clean: torch.Tensor, pred_triggered: torch.Tensor, labels: torch.Tensor,
                     target: int) -> Dict[str, float]:
    share = majority_share(pred_clean)
    return {
        "acc": accuracy(pred_clean, labels),
        "asr": attack_success_rate(pred_triggered, labels, target),
        "asr_cond": conditional_asr(pred_clean, pred_triggered, labels, target),
        "ra": robust_accuracy(pred_triggered, labels, target),
        "collapsed": float(share >= COLLAPSE_SHARE),
        "pred_majority_share": share,
    }


def activation_difference(model: torch.nn.Module, clean: torch.Tensor, triggered: torch.Tensor,
                          batch_size: int | None = None) -> Dict[str, float]:
    """Mean L1/L2 distance between the model's penultimate features (and logits) on clean and
    triggered versions of the same images."""
    sums = dict.fromkeys(ACTIVATION_NAMES, 0.0)
    batch_size = batch_size or (256 if clean.device.type == "cpu" else 1024)
    with torch.no_grad():
        for start in range(0, len(clean), batch_size):
            fc = model.features(clean[start:start + batch_size])
            ft = model.features(triggered[start:start + batch_size])
            head = model.backbone.linear
            for name, a, b in (("penultimate", fc, ft), ("logits", head(fc), head(ft))):
                d = (b - a).flatten(1)
                sums[f"act_l1_{name}"] += float(d.abs().sum(1).sum())
                sums[f"act_l2_{name}"] += float(d.norm(dim=1).sum())
    n = max(len(clean), 1)
    return {k: v / n for k, v in sums.items()}


def defense_effectiveness_rating(acc: float, asr: float, acc_before: float, asr_before: float) -> float:
    """``der`` (BackdoorBench): (max(0, asr_before − asr) − max(0, acc_before − acc) + 1) / 2."""
    return (max(0.0, asr_before - asr) - max(0.0, acc_before - acc) + 1.0) / 2.0


def der_columns(metrics: Dict[str, float], before: Dict[str, float]) -> Dict[str, float]:
    """``der`` of ``metrics`` against the backdoored model's ``before``, and ``val_der`` on the
    validation split when both have ``val_acc``/``val_asr``."""
    out = {"der": defense_effectiveness_rating(metrics["acc"], metrics["asr"], before["acc"], before["asr"])}
    if "val_acc" in metrics and "val_acc" in before:
        out["val_der"] = defense_effectiveness_rating(metrics["val_acc"], metrics["val_asr"], before["val_acc"],
                                                      before["val_asr"])
    return out


def evaluate_splits(model: torch.nn.Module, data, trigger: Trigger, target: int, batch_size: int | None = None,
                    activations: bool = False) -> Dict[str, float]:
    """``evaluate_backdoor`` on ``data.test``, plus the same metrics as ``val_<name>`` on
    ``data.val`` when the dataset has a validation split (activation differences: test only)."""
    out = evaluate_backdoor(model, data.test, trigger, target, batch_size, activations)
    if getattr(data, "val", None) is not None:
        val = evaluate_backdoor(model, data.val, trigger, target, batch_size)
        out.update({f"val_{name}": value for name, value in val.items()})
    return out


def evaluate_backdoor(model: torch.nn.Module, test: Split, trigger: Trigger, target: int,
                      batch_size: int | None = None, activations: bool = False) -> Dict[str, float]:
    """All metrics of ``model`` on the clean test split and its triggered copy (eval mode);
    with ``activations`` also the activation differences (``ACTIVATION_NAMES``)."""
    was_training = model.training
    model.eval()
    try:
        clean = to_float(test.images)
        pred_clean = batched_logits(model, clean, batch_size).argmax(1)
        pred_trig = batched_logits(model, trigger.apply(clean), batch_size).argmax(1)
        out = backdoor_metrics(pred_clean, pred_trig, test.labels, target)
        for times in (4, 9):
            if trigger.is_patch:
                amp = batched_logits(model, trigger.apply_amplified(clean, times), batch_size).argmax(1)
                out[f"asr_x{times}"] = attack_success_rate(amp, test.labels, target)
            else:
                out[f"asr_x{times}"] = math.nan
        if activations:
            keep = test.labels != target
            out.update(activation_difference(model, clean[keep], trigger.apply(clean[keep]), batch_size))
        return out
    finally:
        model.train(was_training)
