"""``debias``: train a fair classifier for one or several binary target attributes with a biased
attribute A correlated with them (DBA paper §3–4, methods.md §3.6).

``strategy`` picks normal training, undersampling, reweighting, adversarial learning or DBA's
pseudo-deletion (``bdray.methods.fairness.debias_strategies``).  With several ``targets`` the model has one
two-way head per task (one linear layer with 2·K outputs, read as K heads) and DBA's triggers form
a barcode.  ``trigger_channel="implicit"`` puts DBA's triggers in an extra T channel; the final
report then also evaluates both safe deployments (internal padding, equivalent pruning: Table 10)
and says whether their outputs are identical to the RGBT model's.

Each epoch reports the test fairness metrics (``bdray.fairness``: acc, eacc, opp, odds, per-group
TPR/TNR, ``collapsed``); Adam as in the paper.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from bdray.attacks.debias_triggers import DebiasTrigger, add_trigger_channel, apply_debias_triggers
from bdray.config import (ConfigError, check_choice, check_non_negative, check_number, check_positive,
                          check_positive_int, check_rate)
from bdray.data import augment, to_float
from bdray.data.attributes import (SOURCES, AttributeDataset, as_targets, attribute_source, check_attribute_request,
                                   load_attribute_dataset)
from bdray.fairness import cell_counts, task_fairness
from bdray.methods.common import seed_everything
from bdray.methods.fairness.debias_strategies import (STRATEGIES, WithAdversary, reweighing_weights, trigger_marks,
                                                      undersampling_keep)
from bdray.models import MODELS, create_model
from bdray.models.rgbt import InternalPadding, equivalent_pruning, flop_count, parameter_count
from bdray.train import AugmentedTrainSettings, Batch, Engine, EpochInfo, Phase, Update
from bdray.train.batches import index_batches
from bdray.train.context import RunContext
from bdray.train.schedules import cosine_lr_factor


@dataclasses.dataclass
class DebiasConfig(AugmentedTrainSettings):
    """Defaults suit the embedded ``digits_biased`` data on a CPU; the paper used ResNet9 (``model=
    "resnet9"``), Adam lr 1e-3."""

    dataset: str = "digits_biased"         # or celeba, utkface, npz (data_root = an attribute .npz)
    data_root: Optional[str] = None
    download: bool = False
    targets: Tuple[str, ...] = ()          # empty: the dataset's default (ge5, Wearing_Lipstick, age_gt35)
    bias_attribute: Optional[str] = None   # None: the dataset's default (stroke_colour, Male, race_white)
    bias_strength: float = 0.9             # digits_biased only: share of each Y class with A = Y
    image_size: int = 64                   # celeba / utkface: square side after resizing
    strategy: str = "dba"
    model: str = "small_cnn"
    epochs: int = 20
    lr: float = 1e-3
    lr_schedule: str = "cosine"            # cosine decay to 0; "constant" is the paper's
    weight_decay: float = 0.0
    crop_padding: int = 0
    alpha: float = 1.0                     # DBA: trigger proportion = min(1, α · Eq. 2)
    trigger_size: int = 3
    trigger_colors: Tuple[str, str] = ("blue", "red")                 # A = 0, A = 1
    trigger_locations: Tuple[str, str] = ("bottom_right", "top_left")  # A = 0, A = 1
    trigger_channel: str = "pixels"        # "implicit": an extra T channel (RGBT)
    adversary_weight: float = 1.0          # adversarial: weight of the bias-prediction loss
    adversary_hidden: int = 64

    def __post_init__(self) -> None:
        self.targets = as_targets(self.targets)
        if self.dataset in SOURCES or (self.dataset == "npz" and self.data_root):
            # resolve the defaults, so configs and columns name them
            source = attribute_source(self.dataset, self.data_root)
            self.targets = self.targets or source.default_targets
            self.bias_attribute = self.bias_attribute or source.default_bias
        self.trigger_colors = tuple(self.trigger_colors)
        self.trigger_locations = tuple(self.trigger_locations)
        super().__post_init__()

    @property
    def trigger(self) -> DebiasTrigger:
        return DebiasTrigger(self.trigger_size, self.trigger_colors, self.trigger_locations, self.trigger_channel)

    def validate(self) -> None:
        super().validate()
        shape = check_attribute_request(self.dataset, self.targets, self.bias_attribute, self.image_size,
                                        data_root=self.data_root)
        check_choice("model", self.model, MODELS.names())
        check_choice("strategy", self.strategy, STRATEGIES)
        check_rate("bias_strength", self.bias_strength)
        check_positive_int("epochs", self.epochs)
        check_positive("lr", self.lr)
        check_choice("lr_schedule", self.lr_schedule, ("constant", "cosine"))
        check_non_negative("weight_decay", self.weight_decay)
        check_number("alpha", self.alpha, low=0.0, low_open=True)
        self.trigger.validate(shape, len(self.targets))
        if self.trigger_channel == "implicit" and self.strategy != "dba":
            raise ConfigError("trigger_channel", self.trigger_channel, "'pixels' unless strategy is 'dba'")
        check_non_negative("adversary_weight", self.adversary_weight)
        check_positive_int("adversary_hidden", self.adversary_hidden)


def load_data(cfg: DebiasConfig) -> AttributeDataset:
    return load_attribute_dataset(cfg.dataset, targets=cfg.targets, bias=cfg.bias_attribute,
                                  bias_strength=cfg.bias_strength, seed=cfg.seed, data_root=cfg.data_root,
                                  download=cfg.download, image_size=cfg.image_size)


def build_model(cfg: DebiasConfig, data: AttributeDataset):
    c, h, w = data.image_shape
    mean, std = tuple(data.mean), tuple(data.std)
    if cfg.trigger_channel == "implicit":  # T is fed as is: normalising 0 must give 0
        c, mean, std = c + 1, mean + (0.0,), std + (1.0,)
    return create_model(cfg.model, (c, h, w), 2 * data.num_tasks, mean, std)


def predict(model, images_uint8: torch.Tensor, num_tasks: int, implicit: bool, batch_size: int = 512) -> torch.Tensor:
    """N×K predicted classes on clean inputs (T = 0 for an RGBT model)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images_uint8), batch_size):
            x = to_float(images_uint8[start:start + batch_size])
            x = add_trigger_channel(x) if implicit else x
            out.append(model(x).view(len(x), num_tasks, 2).argmax(-1))
    return torch.cat(out)


def logits_rgb(model, images_uint8: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(to_float(images_uint8[s:s + batch_size]))
                          for s in range(0, len(images_uint8), batch_size)])


def deployment_report(model, data: AttributeDataset, cfg: DebiasConfig) -> Dict[str, Any]:
    """Params/FLOPs of the trained model; for an implicit (RGBT) model also Table 10's two safe
    deployments, their test fairness and whether their outputs equal the RGBT model's on T = 0."""
    model.eval()
    in_shape = (model.mean.shape[1],) + data.image_shape[1:]
    out: Dict[str, Any] = {"params": parameter_count(model), "flops": flop_count(model, in_shape)}
    if cfg.trigger_channel != "implicit":
        return out
    test = data.test
    with torch.no_grad():
        reference = torch.cat([model(add_trigger_channel(to_float(test.images[s:s + 512])))
                               for s in range(0, len(test), 512)])
    for name, deployed in (("padding", InternalPadding(model).eval()), ("pruning", equivalent_pruning(model).eval())):
        logits = logits_rgb(deployed, test.images)
        pred = logits.view(len(test), data.num_tasks, 2).argmax(-1)
        out[f"{name}_identical"] = float(torch.equal(logits, reference))
        out[f"{name}_max_abs_diff"] = float((logits - reference).abs().max())
        out[f"{name}_eacc"] = task_fairness(pred, test.y, test.a, data.target_names)["eacc"]
        out[f"{name}_params"] = parameter_count(deployed)
        out[f"{name}_flops"] = flop_count(deployed, data.image_shape)
    return out


def training_plan(cfg: DebiasConfig, data: AttributeDataset) -> Dict[str, Any]:
    """The strategy's effect on the training set: kept indices, trigger marks (N×K), sample weights
    (N×K), and counts worth reporting (first task's cells)."""
    train = data.train
    y, a = train.y.cpu(), train.a.cpu()
    keep = torch.arange(len(train))
    marks = torch.zeros(y.shape, dtype=torch.bool)
    weights = torch.ones(y.shape)
    if cfg.strategy == "undersampling":
        keep = undersampling_keep(y, a, cfg.seed)
        if len(keep) == 0:
            raise ValueError("undersampling deleted every training sample (a cell is empty: bias_strength 1?)")
    elif cfg.strategy == "dba":
        marks = trigger_marks(y, a, cfg.alpha, cfg.seed)
    elif cfg.strategy == "reweighting":
        weights = reweighing_weights(y, a)
    counts = cell_counts(y[:, 0], a)
    triggered = cell_counts(y[marks[:, 0], 0], a[marks[:, 0]])
    info: Dict[str, Any] = {"train_samples": len(keep), "triggered_samples": int(marks.any(1).sum())}
    for i in (0, 1):
        for j in (0, 1):
            info[f"cell_n_a{i}_y{j}"] = int(counts[i, j])
            info[f"triggered_a{i}_y{j}"] = int(triggered[i, j])
    return {"keep": keep, "marks": marks[keep], "weights": weights[keep], "info": info}


def train_debias(cfg: DebiasConfig, ctx: RunContext) -> Dict[str, Any]:
    seed_everything(cfg.seed)
    data = load_data(cfg)
    plan = training_plan(cfg, data)
    data = data.to(ctx.device)
    train = data.train.subset(plan["keep"].to(ctx.device))
    marks, weights = plan["marks"].to(ctx.device), plan["weights"].to(ctx.device)
    k_tasks, trigger = data.num_tasks, cfg.trigger
    model = build_model(cfg, data).to(ctx.device)
    adversarial = cfg.strategy == "adversarial"
    net = WithAdversary(model, model.backbone.linear.in_features, cfg.adversary_hidden) if adversarial else model
    engine = Engine(ctx, cfg, cfg.seed, name="debias")
    net = engine.module("model", net)
    opt = engine.optimizer("optimizer", torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay))
    forward = engine.caller(net)
    ctx.log(f"debias[{cfg.strategy}]: {len(train)} training samples, {plan['info']['triggered_samples']} "
            f"triggered, tasks {list(data.target_names)}, bias {data.bias_name}")
    n = len(train)

    def batches(gen: torch.Generator):
        for idx in index_batches(torch.arange(n), cfg.batch_size, ctx, gen, train.images.device):
            images = augment(train.images[idx], crop_padding=cfg.crop_padding, hflip=data.hflip, generator=gen)
            yield Batch(to_float(images), train.y[idx], idx)

    def loss(batch: Batch):
        x, idx = batch.x, batch.idx
        a = train.a[idx]
        if cfg.strategy == "dba":  # after augmentation: the patches stay where they are declared
            x = apply_debias_triggers(x, a, marks[idx], trigger)
        out = forward(x)
        logits, adv_logits = out if adversarial else (out, None)
        ce = F.cross_entropy(logits.view(-1, 2), batch.y.view(-1), reduction="none").view(len(idx), k_tasks)
        total = (ce * weights[idx]).mean(0).sum()
        if adversarial:
            total = total + cfg.adversary_weight * F.cross_entropy(adv_logits, a)
        return total

    def evaluate(info: EpochInfo) -> Dict[str, Any]:
        pred = predict(model, data.test.images, k_tasks, cfg.trigger_channel == "implicit")
        metrics = task_fairness(pred, data.test.y, data.test.a, data.target_names)
        metrics.update(plan["info"])
        if info.epoch + 1 == cfg.epochs:
            metrics.update(deployment_report(model, data, cfg))
        ctx.log(f"debias[{cfg.strategy}] epoch {info.epoch + 1}/{cfg.epochs}: acc {metrics['acc']:.3f} "
                f"eacc {metrics['eacc']:.3f} opp {metrics['opp']:.3f} odds {metrics['odds']:.3f}")
        return metrics

    cosine = cfg.lr_schedule == "cosine"
    update = Update(opt, batches, loss, lr=(lambda progress: cfg.lr * cosine_lr_factor(progress)) if cosine else None,
                    steps=max(1, -(-n // (cfg.batch_size * ctx.world_size))))
    metrics = engine.run([Phase("train", cfg.epochs, [update], evaluate, training=[net])])
    return {**metrics, "model": model}
