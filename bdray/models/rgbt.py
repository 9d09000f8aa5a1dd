"""Deploying an implicit-backdoor (RGBT) model safely (DBA §3.3, Table 10).

- ``InternalPadding``: users pass RGB only; the module appends the zero T channel itself and runs
  the RGBT model, so nobody can reach the trigger channel.
- ``equivalent_pruning``: an RGB-only copy of the model with the T-channel weights of the first
  convolution (and T's normalisation constants) deleted.  On T = 0 inputs the deleted weights only
  ever multiplied zeros, so the pruned model computes the same function.

``parameter_count`` and ``flop_count`` give Table 10's Params and Cost columns (FLOPs as
``torch.utils.flop_counter`` counts them: two per multiply-add).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from bdray.attacks.debias_triggers import add_trigger_channel
from bdray.models.classifier import ImageClassifier


class InternalPadding(nn.Module):
    def __init__(self, rgbt_model: ImageClassifier):
        super().__init__()
        self.model = rgbt_model

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.shape[1] != self.model.mean.shape[1] - 1:
            raise ValueError(f"expected {self.model.mean.shape[1] - 1}-channel input, got {rgb.shape[1]} channels")
        return self.model(add_trigger_channel(rgb))


def first_conv(model: nn.Module) -> tuple:
    """(parent module, attribute name, conv) of the first ``nn.Conv2d`` in registration order."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, name, child
    raise ValueError("the model has no Conv2d layer")


def equivalent_pruning(rgbt_model: ImageClassifier) -> ImageClassifier:
    pruned = copy.deepcopy(rgbt_model)
    parent, name, conv = first_conv(pruned)
    if conv.groups != 1:
        raise ValueError("equivalent pruning needs an ungrouped first convolution")
    rgb = nn.Conv2d(conv.in_channels - 1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    with torch.no_grad():
        rgb.weight.copy_(conv.weight[:, :-1])
        if conv.bias is not None:
            rgb.bias.copy_(conv.bias)
    rgb.to(conv.weight.device, conv.weight.dtype)
    setattr(parent, name, rgb)
    pruned.mean = pruned.mean[:, :-1].clone()
    pruned.std = pruned.std[:, :-1].clone()
    return pruned


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flop_count(model: nn.Module, input_shape) -> int:
    """FLOPs of one forward pass on a single input of shape C×H×W."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())
