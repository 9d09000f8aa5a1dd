"""``clp``: Channel Lipschitzness-based Pruning (Zheng et al., ECCV 2022; docs/methods.md).

Data-free: no image, clean or poisoned, is used.  For every convolution whose output feeds a
BatchNorm, channel ``k``'s upper bound of the channel Lipschitz constant (UCLC) is the largest
singular value of its kernel, reshaped to (input channels, kh·kw) and scaled by the BatchNorm's
``|γ_k| / σ_k``: a bound on how much that channel's output can grow per unit change of its input.
Channels that a trigger drives are the ones with an outlying bound; within each layer, those above
``mean + u · std`` of the layer's bounds are pruned (BatchNorm weight and bias set to zero, so the
channel outputs 0).  ``u`` is the one knob (the paper: 3 by default, swept over 0–10).

The convolution → BatchNorm pairs are found by tracing one forward pass of a blank input (its
shape only), so every architecture's pairs are found without naming them; a BatchNorm fed by
anything else (a sum of branches, a pre-activation block's input) is left alone, as in the
authors' code, which pairs each BatchNorm with the convolution defined just before it.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from bdray.config import Config, ConfigError, check_number
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import load_threat
from bdray.metrics import der_columns, evaluate_splits
from bdray.train.context import RunContext


@dataclasses.dataclass
class CLPConfig(Config):
    backdoor: BackdoorConfig = dataclasses.field(default_factory=BackdoorConfig)
    u: float = 3.0    # prune channels whose UCLC exceeds mean + u·std of their layer's
    seed: int = 0

    def validate(self) -> None:
        if not isinstance(self.backdoor, BackdoorConfig):
            raise ConfigError("backdoor", self.backdoor, "a BackdoorConfig (the attack to erase)")
        check_number("u", self.u, low=0.0)
        check_number("seed", self.seed, low=0, integer=True)


def conv_bn_pairs(model: nn.Module, image_shape: Tuple[int, int, int]) -> List[Tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(convolution, affine BatchNorm) pairs where the BatchNorm's input is exactly the
    convolution's output, found by one eval-mode forward pass of a zero image of ``image_shape``."""
    outputs: Dict[int, Tuple[torch.Tensor, nn.Conv2d]] = {}
    pairs: List[Tuple[nn.Conv2d, nn.BatchNorm2d]] = []

    def after_conv(conv, _inputs, output):
        outputs[id(output)] = (output, conv)  # the tensor is kept, so its id cannot be reused

    def before_bn(bn, inputs):
        if not bn.affine:  # no γ, β to zero: left alone
            return
        seen = outputs.get(id(inputs[0]))
        if seen is not None and seen[0] is inputs[0]:
            pairs.append((seen[1], bn))

    hooks = [m.register_forward_hook(after_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_pre_hook(before_bn) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, *image_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return pairs


def channel_lipschitz_bounds(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """UCLC per output channel: ‖W_k‖₂ (kernel as in-channels × kh·kw) · |γ_k| / sqrt(var_k + eps)."""
    with torch.no_grad():
        w = conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1], -1).float()
        return torch.linalg.matrix_norm(w, ord=2) * bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)


def clp_prune(model: nn.Module, image_shape: Tuple[int, int, int], u: float) -> Dict[str, Any]:
    """Prune ``model`` in place; returns the counts (``pruned_channels``, ``pruned_fraction`` of
    the traced BatchNorm channels, ``clp_layers`` traced)."""
    pairs = conv_bn_pairs(model, image_shape)
    if not pairs:
        raise ConfigError("model", type(model).__name__, "a network with convolution → BatchNorm layers (CLP prunes those)")
    pruned = total = 0
    with torch.no_grad():
        for conv, bn in pairs:
            bounds = channel_lipschitz_bounds(conv, bn)
            outliers = bounds > bounds.mean() + u * bounds.std()
            bn.weight[outliers] = 0
            bn.bias[outliers] = 0
            pruned += int(outliers.sum())
            total += len(bounds)
    return {"pruned_channels": pruned, "pruned_fraction": pruned / total, "clp_layers": len(pairs)}


def train_clp(cfg: CLPConfig, ctx: RunContext) -> Dict[str, Any]:
    t0 = time.time()
    threat = load_threat(cfg.backdoor, ctx)
    model = copy.deepcopy(threat.model)
    counts = clp_prune(model, threat.data.image_shape, cfg.u)
    metrics = evaluate_splits(model, threat.data, threat.trigger, threat.target_class, activations=True)
    metrics.update(counts, teacher_acc=threat.metrics["acc"], teacher_asr=threat.metrics["asr"],
                   **der_columns(metrics, threat.metrics))
    metrics.update(epoch=1, epoch_time_s=time.time() - t0, resumed_from_epoch=0)
    ctx.report(metrics)
    return {**metrics, "model": model}
