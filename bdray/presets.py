"""Settings that belong to the data: one table per dataset family, chosen by image shape, printed.

A family is picked from the images' shape (channels, side): the embedded 16×16 digits, 28×28 grey
digits (MNIST-like), 32×32 colour (CIFAR-like), 64×64 faces.  Each entry sets the attack model's
training (model, epochs, batch, lr, crop) for a CPU budget and for the papers' budget.  The method
defaults themselves (DHBE, ABL, PT, CBD, ...) are the papers' where they hold and are documented in
the README where they differ; the table holds only what has to change with the data.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

# family -> budget -> BackdoorConfig fields
PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "digits16": {"cpu": {}, "paper": {}},  # the embedded digits: BackdoorConfig's own defaults
    "grey28": {"cpu": {"model": "small_cnn", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 2},
               "paper": {"model": "small_cnn", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 2}},
    "colour32": {"cpu": {"model": "small_cnn", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 2},
                 "paper": {"model": "resnet18", "epochs": 100, "batch_size": 128, "lr": 0.1, "crop_padding": 4}},
    "faces64": {"cpu": {"model": "resnet9", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 4},
                "paper": {"model": "resnet9", "epochs": 100, "batch_size": 128, "lr": 0.1, "crop_padding": 4}},
}


def family_of(image_shape: Tuple[int, int, int]) -> str:
    """The preset family of images of ``image_shape`` (C, H, W)."""
    c, h, w = image_shape
    side = min(h, w)
    if side <= 20:
        return "digits16"
    if side <= 30:
        return "grey28" if c == 1 else "colour32"
    if side <= 48:
        return "colour32"
    return "faces64"


def backdoor_preset(image_shape: Tuple[int, int, int], budget: str = "cpu") -> Tuple[str, Dict[str, Any]]:
    """``(family, BackdoorConfig fields)`` for images of ``image_shape`` at ``budget`` (cpu|paper;
    a smoke budget uses the cpu preset)."""
    family = family_of(image_shape)
    return family, dict(PRESETS[family]["paper" if budget == "paper" else "cpu"])


def describe(family: str, values: Dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "BackdoorConfig defaults"
    return f"preset '{family}': {shown}"
