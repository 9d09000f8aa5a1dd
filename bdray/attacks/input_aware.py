"""Input-aware dynamic backdoor (Nguyen & Tran 2020; methods.md §2.8).

A pattern generator G and a mask generator M make a trigger per image:
x' = x + M(x) ⊙ (G(x) − x).  They are trained as the paper does, jointly with a classifier that
starts from the clean surrogate model: each batch carries backdoor samples (own trigger, label →
target), cross-trigger samples (another image's trigger, true label kept: triggers must not
transfer) and clean samples; diversity losses keep different images' triggers different, and a
density term keeps the mask small.  The trained generators are the attack; as in the data-poisoning
benchmarks (BackdoorBench), a share of the training set is then poisoned with them and relabelled,
and the victim trains on that.  ``Trigger.apply`` is a pure batched function of the images given
the generators' weights (stored with the attack artifact).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from bdray.attacks.specs import ATTACKS, AttackParams, Trigger
from bdray.config import ConfigError, check_number, check_positive, check_positive_int


class TriggerNet(nn.Module):
    """A small encoder-decoder from images to an image-sized map in [0, 1] (``out_channels``)."""

    def __init__(self, channels: int, out_channels: int, width: int):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.encoder = nn.Sequential(block(channels, width), nn.MaxPool2d(2), block(width, 2 * width), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2), block(2 * width, width),
                                     nn.Upsample(scale_factor=2), block(width, width),
                                     nn.Conv2d(width, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x)))


def paste(images: torch.Tensor, pattern: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return images + mask * (pattern - images)


def threshold_mask(mask: torch.Tensor) -> torch.Tensor:
    """The authors' steep threshold of the mask generator's [0, 1] output (0.5 + tanh(20·m − 10)/2):
    nearly binary masks, so a trigger is a few pixels replaced by the pattern, not a faint veil."""
    return 0.5 + 0.5 * torch.tanh(20.0 * mask - 10.0)


class InputAwareTrigger(Trigger):
    name = "input_aware"

    def __init__(self, pattern_net: TriggerNet, mask_net: TriggerNet):
        self.pattern_net, self.mask_net = pattern_net.eval(), mask_net.eval()

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.pattern_net.to(images.device)
            self.mask_net.to(images.device)
            return paste(images, self.pattern_net(images), threshold_mask(self.mask_net(images))).clamp(0, 1)

    def state(self) -> Dict[str, torch.Tensor]:
        out = {f"pattern.{k}": v.detach().cpu() for k, v in self.pattern_net.state_dict().items()}
        out.update({f"mask.{k}": v.detach().cpu() for k, v in self.mask_net.state_dict().items()})
        return out


def _diversity(x1, x2, t1, t2) -> torch.Tensor:
    """‖x1 − x2‖ / ‖t1 − t2‖ per pair: small when different images get different triggers."""
    dx = (x1 - x2).flatten(1).norm(dim=1)
    dt = (t1 - t2).flatten(1).norm(dim=1)
    return (dx / (dt + 1e-3)).mean()


@ATTACKS.register("input_aware")
@dataclasses.dataclass
class InputAwareParams(AttackParams):
    needs_surrogate = True
    target_class: int = 0          # the backdoor's target while the generators train (set to the attack's)
    mask_steps: int = 100          # mask generator pre-training (diversity + density)
    steps: int = 300               # joint training of generators and classifier
    batch_size: int = 128
    lr: float = 0.01               # Adam, generators and classifier
    backdoor_prob: float = 0.1     # ρ_b: share of each batch with its own trigger, relabelled
    cross_prob: float = 0.1        # ρ_c: share with another image's trigger, label kept
    lambda_div: float = 1.0
    mask_density: float = 0.032    # per-pixel mask values above this are penalised (λ_norm)
    lambda_norm: float = 100.0
    generator_width: int = 16

    def validate(self):
        check_number("target_class", self.target_class, low=0, integer=True)
        check_number("mask_steps", self.mask_steps, low=0, integer=True)
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_number("backdoor_prob", self.backdoor_prob, low=0.0, high=1.0, low_open=True)
        check_number("cross_prob", self.cross_prob, low=0.0, high=1.0)
        if self.backdoor_prob + self.cross_prob > 1.0:
            raise ConfigError("cross_prob", self.cross_prob, f"at most 1 - backdoor_prob = {1 - self.backdoor_prob:g}")
        check_number("lambda_div", self.lambda_div, low=0.0)
        check_number("mask_density", self.mask_density, low=0.0, high=1.0, low_open=True)
        check_number("lambda_norm", self.lambda_norm, low=0.0)
        check_positive_int("generator_width", self.generator_width)

    def check_fits(self, image_shape):
        _, h, w = image_shape
        if h % 4 or w % 4:
            raise ConfigError("attack", "input_aware", f"images whose sides are multiples of 4 (got {h}×{w})")

    def nets(self, image_shape):
        c = image_shape[0]
        return TriggerNet(c, c, self.generator_width), TriggerNet(c, 1, self.generator_width)

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        self.check_fits(image_shape)
        torch.manual_seed(seed)
        pattern_net, mask_net = self.nets(image_shape)
        if state and any(k.startswith("pattern.") for k in state):
            pattern_net.load_state_dict({k[len("pattern."):]: v for k, v in state.items() if k.startswith("pattern.")})
            mask_net.load_state_dict({k[len("mask."):]: v for k, v in state.items() if k.startswith("mask.")})
            return InputAwareTrigger(pattern_net, mask_net)
        model, images = surrogate()
        train_generators(self, pattern_net, mask_net, copy.deepcopy(model), images, seed)
        return InputAwareTrigger(pattern_net, mask_net)


def train_generators(p: InputAwareParams, pattern_net: TriggerNet, mask_net: TriggerNet, classifier: nn.Module,
                     images: torch.Tensor, seed: int) -> None:
    """The authors' two phases: the mask generator alone (diversity + per-pixel density of the
    thresholded mask), then -- the mask generator frozen -- pattern generator and classifier jointly."""
    dev = images.device
    pattern_net.to(dev).train()
    mask_net.to(dev).train()
    classifier.to(dev).train()
    gen = torch.Generator().manual_seed(seed)
    n = len(images)

    def batch():
        idx = torch.randint(0, n, (min(p.batch_size, n),), generator=gen).to(dev)
        return images[idx], idx

    def density(m):
        return F.relu(m - p.mask_density).mean()

    opt_mask = torch.optim.Adam(mask_net.parameters(), lr=p.lr)
    for _ in range(p.mask_steps):
        x1, _ = batch()
        x2, _ = batch()
        m1, m2 = threshold_mask(mask_net(x1)), threshold_mask(mask_net(x2))
        loss = p.lambda_div * _diversity(x1, x2, m1, m2) + p.lambda_norm * density(m1)
        opt_mask.zero_grad(set_to_none=True)
        loss.backward()
        opt_mask.step()

    mask_net.eval().requires_grad_(False)
    params = list(pattern_net.parameters()) + list(classifier.parameters())
    opt = torch.optim.Adam(params, lr=p.lr)
    with torch.no_grad():
        clean_pred = classifier.eval()(images).argmax(1)  # the surrogate's labels stand in for the true ones
    classifier.train()
    for _ in range(p.steps):
        x, idx = batch()
        x2, _ = batch()
        y = clean_pred[idx].clone()
        nb = max(1, int(round(p.backdoor_prob * len(x))))
        nc = int(round(p.cross_prob * len(x)))
        with torch.no_grad():
            msk, msk2 = threshold_mask(mask_net(x)), threshold_mask(mask_net(x2))
        pat, pat2 = pattern_net(x), pattern_net(x2)
        mixed = x.clone()
        mixed[:nb] = paste(x[:nb], pat[:nb], msk[:nb])
        y[:nb] = p.target_class
        mixed[nb:nb + nc] = paste(x[nb:nb + nc], pat2[nb:nb + nc], msk2[nb:nb + nc])
        loss = F.cross_entropy(classifier(mixed.clamp(0, 1)), y)
        loss = loss + p.lambda_div * _diversity(x, x2, pat, pat2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    pattern_net.eval()
