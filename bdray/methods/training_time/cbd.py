"""``cbd``: causality-inspired backdoor defense (methods.md §3.5, the CBD paper).

1. f_B: a fresh model trained on the poisoned set for a few epochs (``fb_epochs``, constant
   ``fb_lr``): it learns the backdoor first, because the backdoor is the easier feature.
2. f_C: another fresh model trained for ``epochs`` with the per-sample weighted cross-entropy
   w(x) = CE(f_B(x), y) / (CE(f_B(x), y) + CE(f_C(x), y)) (both terms detached), rescaled to mean 1
   per batch (or per label: ``weight_normalization``): samples f_B fits easily (the poisoned ones)
   count little.
3. Optional (``mutual_information=True``, on): a critic D(z_B, z_C) on the penultimate features is
   trained to tell joint pairs from shuffled pairs; f_C minimises its estimate of the dependence of
   z_C on z_B with weight ``mi_weight`` (λ) plus ``l2_weight`` · ||z_C||².  ``mi_estimator``:
   ``"wasserstein"`` (the authors': a 1-Lipschitz critic, E_joint[D] − E_shuffled[D], λ = 0.01) or
   ``"jsd"`` (a Jensen-Shannon bound).

f_B and f_C are the two phases of the training engine (``bdray.train``).  Reports
``mean_weight_poisoned`` / ``mean_weight_clean``: the average weight f_C's loss gave to the
poisoned and to the clean samples in each epoch (judged with the recorded poison indices).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bdray.config import check_choice, check_non_negative, check_number, check_positive, check_positive_int
from bdray.methods.attack.threat import poisoned_set
from bdray.methods.common import seed_everything
from bdray.methods.training_time.poisoned import (PoisonedTrainingConfig, against_undefended, per_sample_loss,
                                                  poisoned_batches, score_quality, sgd, undefended_reference)
from bdray.metrics import evaluate_backdoor, evaluate_splits
from bdray.models import create_model
from bdray.train import Engine, Phase, Update, cross_entropy
from bdray.train.context import RunContext, unwrap
from bdray.train.schedules import step_lr_factor


class PairDiscriminator(nn.Module):
    """Scores a (z_B, z_C) pair: high for pairs from the same image, low for shuffled pairs.

    ``lipschitz=True`` is the authors' critic: one hidden layer as wide as the features, leaky ReLU,
    dropout 0.2, and every weight divided by its spectral norm after each step (``constrain``), so the
    critic stays 1-Lipschitz as a WGAN critic must."""

    def __init__(self, dim_b: int, dim_c: int, hidden: int, lipschitz: bool = False):
        super().__init__()
        self.lipschitz = lipschitz
        if lipschitz:
            self.net = nn.Sequential(nn.Dropout(0.2), nn.Linear(dim_b + dim_c, dim_c), nn.LeakyReLU(0.01),
                                     nn.Dropout(0.2), nn.Linear(dim_c, 1))
        else:
            self.net = nn.Sequential(nn.Linear(dim_b + dim_c, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, z_b: torch.Tensor, z_c: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z_b, z_c], dim=1)).squeeze(1)

    @torch.no_grad()
    def constrain(self) -> None:
        """Divide each weight matrix by its largest singular value (a no-op for the JSD critic)."""
        if not self.lipschitz:
            return
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                layer.weight.div_(torch.linalg.matrix_norm(layer.weight, ord=2).clamp_min(1e-12))


def jsd_mi_estimate(disc: nn.Module, z_b: torch.Tensor, z_c: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon lower bound of I(z_B; z_C): E_joint[log σ(D)] + E_marginal[log(1 − σ(D))]."""
    joint = disc(z_b, z_c)
    marginal = disc(z_b[perm], z_c)
    return -F.softplus(-joint).mean() - F.softplus(marginal).mean()


def wasserstein_mi_estimate(disc: nn.Module, z_b: torch.Tensor, z_c: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """The authors' dependence estimate: E_joint[D] − E_marginal[D] for a 1-Lipschitz critic D, the
    Wasserstein-1 distance between the joint and the product of the marginals (0 when independent)."""
    return disc(z_b, z_c).mean() - disc(z_b[perm], z_c).mean()


MI_ESTIMATORS = {"wasserstein": wasserstein_mi_estimate, "jsd": jsd_mi_estimate}


@dataclasses.dataclass
class CBDConfig(PoisonedTrainingConfig):
    """Defaults sized for the embedded digits; the paper's schedule is
    ``bdray.presets.PAPER_SETTINGS["cbd"]``."""

    # f_B as in the authors' code: 5 epochs at a constant lr 0.1, batch 64, weight decay 1e-4
    fb_epochs: int = 5
    fb_lr: float = 0.1
    batch_size: int = 64
    weight_decay: float = 1e-4
    epochs: int = 20                   # f_C's training (paper: 100)
    lr: float = 0.05                   # f_C's lr (paper: 0.1), ×0.1 at each milestone
    lr_milestones: Tuple[float, ...] = (0.5, 0.75)  # paper: (0.2, 0.7)
    # weights rescaled to mean 1 over the batch ("batch": the paper and the authors' code) or within
    # each label of the batch ("class": keeps whole classes f_B fits from being starved, but cannot
    # tell poisoned from clean images inside the target class; RESULTS "Measurements behind the
    # defaults")
    weight_normalization: str = "batch"
    # the dependence term I(z_C; z_B) of the paper's Eq. 8 (the authors' code has it behind a flag,
    # off); on, as the authors' estimator at their weight it barely moves the outcome (README)
    mutual_information: bool = True
    # "wasserstein": the authors' estimator (1-Lipschitz critic, E_joint[D] − E_shuffled[D], weight
    # 0.01); "jsd": a Jensen-Shannon bound with an unconstrained critic
    mi_estimator: str = "wasserstein"
    mi_weight: float = 0.01            # λ of the dependence term (the authors' code: 0.01)
    l2_weight: float = 1e-4            # β of the L2 penalty on z_C (with the dependence term)
    discriminator_lr: Optional[float] = None   # Adam; None: 0.2 for "wasserstein" (authors'), 1e-3 for "jsd"
    discriminator_width: int = 64      # hidden width of the "jsd" critic (the Lipschitz one is as wide as z)

    def validate(self) -> None:
        super().validate()
        check_positive_int("fb_epochs", self.fb_epochs)
        check_positive("fb_lr", self.fb_lr)
        check_positive_int("epochs", self.epochs)
        check_positive("lr", self.lr)
        for m in self.lr_milestones:
            check_number("lr_milestones", m, low=0.0, high=1.0)
        check_choice("weight_normalization", self.weight_normalization, ("batch", "class"))
        check_non_negative("mi_weight", self.mi_weight)
        check_non_negative("l2_weight", self.l2_weight)
        check_choice("mi_estimator", self.mi_estimator, tuple(MI_ESTIMATORS))
        if self.discriminator_lr is not None:
            check_positive("discriminator_lr", self.discriminator_lr)
        check_positive_int("discriminator_width", self.discriminator_width)


def normalise_weights(w: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor:
    """Rescale sample weights to mean 1 over the batch (``"batch"``, the paper) or within each label
    of the batch (``"class"``)."""
    if mode == "batch":
        return w / w.mean().clamp_min(1e-12)
    sums = torch.zeros(int(y.max()) + 1, device=w.device, dtype=w.dtype).index_add_(0, y, w)
    counts = torch.bincount(y, minlength=len(sums)).to(w.dtype)
    return w / (sums / counts.clamp_min(1))[y].clamp_min(1e-12)


def weight_quality(f_b, f_c, train, poison_indices: torch.Tensor) -> Dict[str, float]:
    """CBD's sample weights w = CE_B / (CE_B + CE_C) on the whole training set (no augmentation),
    scored like a detector: ``weight_auroc`` (the lower the weight, the more suspicious) and, for the
    samples down-weighted below the mean (w < mean w), ``weight_tpr`` / ``weight_fpr``."""
    ce_b, ce_c = per_sample_loss(f_b, train), per_sample_loss(f_c, train)
    w = ce_b / (ce_b + ce_c + 1e-12)
    return score_quality(-w, torch.nonzero(w < w.mean()).flatten(), poison_indices, "weight_")


def _weighted_loss(cfg: CBDConfig, f_b, forward_c, disc, opt_disc, poisoned_mask: torch.Tensor):
    """The loss f_C minimises on one batch (after one critic step when the MI term is on), with the
    mean weights of the poisoned and the clean samples and the MI estimate as parts."""
    def loss_fn(batch):
        x, y = batch.x, batch.y
        with torch.no_grad():
            ce_b = F.cross_entropy(f_b(x), y, reduction="none")
        logits_c, z_c = forward_c(x, with_features=True)
        ce_c = F.cross_entropy(logits_c, y, reduction="none")
        w = ce_b / (ce_b + ce_c.detach() + 1e-12)
        w = normalise_weights(w, y, cfg.weight_normalization)
        loss = (w * ce_c).mean()
        is_p = poisoned_mask[batch.idx]
        parts = {"mean_weight_poisoned": (w[is_p].sum(), is_p.sum()),
                 "mean_weight_clean": (w[~is_p].sum(), (~is_p).sum())}
        if disc is not None:
            with torch.no_grad():
                z_b = f_b.features(x)
            perm = torch.roll(torch.arange(len(x), device=x.device), 1)
            estimate = MI_ESTIMATORS[cfg.mi_estimator]
            # the critic in fp32 whatever the autocast: its step is taken here, outside the engine's
            # (gradient-scaled) update, on detached features; it maximises the estimate
            with torch.autocast(x.device.type, enabled=False):
                z_b32, z_c32 = z_b.float(), z_c.float()
                d_loss = -estimate(disc, z_b32, z_c32.detach(), perm)
                opt_disc.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_disc.step()
                unwrap(disc).constrain()
                mi = estimate(disc, z_b32, z_c32, perm)
            loss = loss + cfg.mi_weight * mi + cfg.l2_weight * z_c.pow(2).sum(1).mean()
            parts["mi_estimate"] = (mi.detach(), 1)  # a batch statistic: the mean over steps
        return loss, parts
    return loss_fn


def train_cbd(cfg: CBDConfig, ctx: RunContext) -> Dict[str, Any]:
    reference = undefended_reference(cfg, ctx)
    seed_everything(cfg.seed)
    pd_ = poisoned_set(cfg.backdoor, ctx)
    data, train = pd_.data, pd_.train
    make = lambda: create_model(cfg.backdoor.model, data.image_shape, data.num_classes, data.mean, data.std)  # noqa: E731
    engine = Engine(ctx, cfg, cfg.seed, name="cbd")
    f_b = engine.module("f_b", make())
    f_c = engine.module("f_c", make())
    disc = opt_disc = None
    if cfg.mutual_information:
        dim = unwrap(f_c).backbone.linear.in_features
        lipschitz = cfg.mi_estimator == "wasserstein"
        disc = engine.module("discriminator",
                             PairDiscriminator(dim, dim, cfg.discriminator_width, lipschitz=lipschitz))
        disc_lr = cfg.discriminator_lr if cfg.discriminator_lr is not None else (0.2 if lipschitz else 1e-3)
        opt_disc = engine.optimizer("discriminator", torch.optim.Adam(disc.parameters(), lr=disc_lr))
    opt_b = engine.optimizer("f_b", sgd(f_b, cfg.fb_lr, cfg))
    opt_c = engine.optimizer("f_c", sgd(f_c, cfg.lr, cfg))
    everything = torch.arange(len(train))
    poisoned_mask = pd_.is_poisoned.to(ctx.device)
    fb_metrics: Dict[str, Any] = {}

    def start_f_c() -> None:
        f_b.eval()
        m = evaluate_backdoor(unwrap(f_b), data.test, pd_.trigger, pd_.target_class)
        fb_metrics.update(fb_acc=m["acc"], fb_asr=m["asr"])  # what f_B alone gives (it should carry the backdoor)

    def evaluate(model, extra: Dict[str, Any], last: bool = False) -> Dict[str, Any]:
        metrics = evaluate_splits(unwrap(model), data, pd_.trigger, pd_.target_class)
        if last:  # the weights f_C's loss gives every training sample, as a detector's scores
            metrics.update(weight_quality(unwrap(f_b), unwrap(f_c), train, pd_.poison_indices))
        return {**metrics, **extra, "poisoned_samples": len(pd_.poison_indices),
                **against_undefended(metrics, reference)}

    batches = poisoned_batches(pd_, lambda: everything, cfg.batch_size, cfg, ctx)
    phases = [
        Phase("f_b", cfg.fb_epochs, [Update(opt_b, batches, cross_entropy(engine.caller(f_b)))],
              lambda info: evaluate(f_b, {}), training=[f_b]),
        Phase("f_c", cfg.epochs,
              [Update(opt_c, batches, _weighted_loss(cfg, unwrap(f_b), engine.caller(f_c), disc, opt_disc,
                                                     poisoned_mask),
                      lr=lambda progress: cfg.lr * step_lr_factor(progress, cfg.lr_milestones))],
              lambda info: evaluate(f_c, fb_metrics, last=info.phase_epoch + 1 == cfg.epochs), training=[f_c],
              begin=start_f_c),
    ]
    metrics = engine.run(phases)
    return {**metrics, "model": unwrap(f_c)}
