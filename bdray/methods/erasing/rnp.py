"""``rnp``: Reconstructive Neuron Pruning (Li, Lyu, Ma, Chen, Koren, Li & Jiang, "Reconstructive
Neuron Pruning for Backdoor Defense", ICML 2023; docs/methods.md).

Unlearning a backdoored network on a few clean images (gradient *ascent* on their cross-entropy)
destroys its clean features quickly but leaves the backdoor features alone; recovering the
unlearned network with a mask per neuron (minimising the clean loss over the masks only) then
brings the clean neurons back and leaves the backdoor neurons with small masks.  Those neurons are
pruned in the *original* backdoored network.  Three steps, two phases on the engine:

1. ``unlearn`` -- SGD ascent on the clean subset (lr 0.01, momentum 0.9, weight decay 5e-4, the lr
   ×0.1 half-way), stopped after the first epoch whose running training accuracy is at most
   ``clean_threshold`` (0.2), at most ``unlearn_epochs`` (20);
2. ``recover`` -- a mask m ∈ [0, 1] on every BatchNorm channel of the unlearned network (its
   weights frozen, ``BN_k(x) = m_k γ_k x̂_k + β_k``, the masks of ``anp``'s network without its
   perturbations) trained by SGD (lr 0.2, momentum 0.9) on ``alpha`` · CE (α 0.2) in train mode
   for ``recover_epochs`` (20), clipped to [0, 1] after every step;
3. pruning -- the neurons whose mask is at most ``threshold`` (0.2; or the ``prune_count``
   smallest) get γ = 0 in the backdoored network (β stays, as the authors prune).

Defaults from the authors' code (main.py): 1 % of the training set clean, batch 128.  An epoch of
theirs is one pass over 500 images (1 % of CIFAR-10); here the clean share is repeated up to
``samples_per_epoch`` = 500, so every dataset gets their step count.  The threshold is fixed in
advance, never chosen on test ASR.  Their code clips the unlearning gradient *before* computing
it (a no-op); no clipping here.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict

import torch
import torch.nn.functional as F

from bdray.config import check_choice, check_number, check_positive, check_positive_int
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import load_threat
from bdray.methods.common import seed_everything
from bdray.methods.erasing.anp import PRUNE_BY, PerturbedNetwork, anp_metrics, neurons_to_prune, pruned_copy
from bdray.methods.erasing.clean_data import check_clean_data_fields, clean_subset
from bdray.metrics import evaluate_splits
from bdray.train import AugmentedTrainSettings, Batch, Engine, EpochInfo, Phase, Update
from bdray.train.batches import repeated
from bdray.train.context import RunContext, unwrap
from bdray.train.schedules import step_lr_factor


@dataclasses.dataclass
class RNPConfig(AugmentedTrainSettings):
    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    clean_fraction: float = 0.01   # share of the training set the defender holds clean (the paper: 1 %)
    subset_seed: int = 0
    samples_per_epoch: int = 500   # the authors' epoch: one pass over 500 images
    batch_size: int = 128
    crop_padding: int = 0          # the authors' defense data is not augmented
    unlearn_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    unlearn_epochs: int = 20       # at most; the phase stops at clean_threshold
    clean_threshold: float = 0.2   # stop unlearning once the training accuracy is at most this
    recover_lr: float = 0.2
    recover_epochs: int = 20
    alpha: float = 0.2             # weight of the recovering loss
    prune_by: str = "threshold"    # threshold: prune masks ≤ threshold; number: the prune_count smallest
    threshold: float = 0.2
    prune_count: int = 0

    def validate(self) -> None:
        super().validate()
        check_clean_data_fields(self)
        for name in ("samples_per_epoch", "unlearn_epochs", "recover_epochs"):
            check_positive_int(name, getattr(self, name))
        for name in ("unlearn_lr", "recover_lr", "alpha"):
            check_positive(name, getattr(self, name))
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("clean_threshold", self.clean_threshold, low=0.0, high=1.0)
        check_choice("prune_by", self.prune_by, PRUNE_BY)
        check_number("threshold", self.threshold, low=0.0, high=1.0)
        check_number("prune_count", self.prune_count, low=0, integer=True)


def train_rnp(cfg: RNPConfig, ctx: RunContext) -> Dict[str, Any]:
    threat = load_threat(cfg.backdoor, ctx)
    seed_everything(cfg.seed)
    subset = clean_subset(threat.data.train, cfg.clean_fraction, cfg.subset_seed)
    engine = Engine(ctx, cfg, cfg.seed, name="rnp")
    unlearned = engine.module("unlearned", copy.deepcopy(threat.model))
    masked = engine.module("masks", PerturbedNetwork(copy.deepcopy(threat.model)))
    unlearn_opt = engine.optimizer("unlearn", torch.optim.SGD(unlearned.parameters(), lr=cfg.unlearn_lr,
                                                              momentum=cfg.momentum, weight_decay=cfg.weight_decay))
    mask_opt = engine.optimizer("recover", torch.optim.SGD(unwrap(masked).masks.parameters(), lr=cfg.recover_lr,
                                                           momentum=cfg.momentum))
    forward_unlearned, forward_masked = engine.caller(unlearned), engine.caller(masked)
    batches = repeated(subset, cfg.samples_per_epoch, cfg.batch_size, crop_padding=cfg.crop_padding,
                       hflip=threat.data.hflip)

    def unlearn_loss(batch: Batch):
        logits = forward_unlearned(batch.x)
        correct = (logits.detach().argmax(1) == batch.y).sum()
        return F.cross_entropy(logits, batch.y), {"train_acc": (correct, len(batch.y))}

    def recover_loss(batch: Batch):
        logits = forward_masked(batch.x)
        correct = (logits.detach().argmax(1) == batch.y).sum()
        return cfg.alpha * F.cross_entropy(logits, batch.y), {"train_acc": (correct, len(batch.y))}

    def clip_masks():
        with torch.no_grad():
            for m in unwrap(masked).masks:
                m.clamp_(0.0, 1.0)

    def start_recovering():
        """The mask network is the unlearned one (its weights frozen), copied in once at the phase's
        first epoch; a run resumed later in the phase has it, running statistics and all, from the
        checkpoint."""
        if not engine.state.get("recovering"):
            unwrap(masked).net.load_state_dict(unwrap(unlearned).state_dict())
            engine.state["recovering"] = 1

    def evaluate_unlearned(_info: EpochInfo) -> Dict[str, Any]:
        metrics = evaluate_splits(unwrap(unlearned), threat.data, threat.trigger, threat.target_class)
        # kept (and checkpointed) for the recovering epochs' rows: the unlearned model the masks start from
        engine.state.update(unlearned_acc=metrics["acc"], unlearned_asr=metrics["asr"])
        return {"unlearned_acc": metrics["acc"], "unlearned_asr": metrics["asr"],
                **anp_metrics(cfg, threat, unwrap(masked).mask_values(), len(subset))}

    def evaluate_recovered(_info: EpochInfo) -> Dict[str, Any]:
        metrics = evaluate_splits(unwrap(masked), threat.data, threat.trigger, threat.target_class)
        return {"recovered_acc": metrics["acc"], "recovered_asr": metrics["asr"],
                "unlearned_acc": engine.state["unlearned_acc"], "unlearned_asr": engine.state["unlearned_asr"],
                **anp_metrics(cfg, threat, unwrap(masked).mask_values(), len(subset))}

    unlearn = Update(unlearn_opt, batches, unlearn_loss, sign=-1.0, name="unlearn_loss",
                     lr=lambda progress: cfg.unlearn_lr * step_lr_factor(progress, (0.5,)))
    recover = Update(mask_opt, batches, recover_loss, name="recover_loss", after_step=clip_masks)
    metrics = engine.run([
        Phase("unlearn", cfg.unlearn_epochs, [unlearn], evaluate_unlearned, training=[unlearned],
              stop=lambda m: m["train_acc"] <= cfg.clean_threshold),
        Phase("recover", cfg.recover_epochs, [recover], evaluate_recovered, training=[masked],
              begin=start_recovering),
    ])
    prune = neurons_to_prune(unwrap(masked).mask_values(), cfg.prune_by, cfg.threshold, cfg.prune_count)
    return {**metrics, "model": pruned_copy(threat.model, prune)}

