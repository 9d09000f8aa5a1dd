"""Settings that belong to the data: one table per dataset family, chosen by image shape, printed.

A family is picked from the images' shape (channels, side): the embedded 16×16 digits, 28×28 grey
digits (MNIST-like), 32×32 colour (CIFAR-like), 64×64 faces.  Each entry sets the attack model's
training (model, epochs, batch, lr, crop) for a CPU budget and for the papers' budget.  The method
defaults themselves (DHBE, ABL, PT, CBD, ...) are the papers' where they hold and are documented in
the README where they differ; ``METHOD_PRESETS`` holds the few method fields that have to change
with the data at the CPU budget (the paper budget uses each method's ``paper()`` as it is).
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


# family -> method -> config fields at the CPU budget, where one value cannot serve every family.
# PT's M′ (a fresh model, first layers frozen) must fit the trigger but not yet the clean images:
# on the 16×16 digits 3 epochs do (isolation precision 1.00 on 4 seeds; 10 epochs fit the clean
# digits too: 0.51-0.64), on 32×32 colour images 3 epochs had not learned the trigger (precision
# 0.36 / 0.81, below M_s's) and 10 do (0.98, asr 0.50 -> 0.08 on seed 0): README
# DHBE's trigger space must stay far smaller than the edits that change a class (paper §3): its
# 5×5 generated patch is 2.4 % of a 32×32 image but 9.8 % of a 16×16 one, a stroke of a digit.
# The same fraction is a 3×3 patch; λ 1.0 keeps λ·L_abr where 0.5 had it with 5×5 (0.28 vs 0.33).
# Embedded digits, 5 seeds, student lr 0.036-0.1: asr_x9 ≤ 0.012 (5×5, λ 0.5: up to 0.98): README
METHOD_PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "digits16": {"dhbe": {"trigger_gen_size": 3, "lambda_abr": 1.0}},
    "colour32": {"pt": {"partial_epochs": 10}},
    "faces64": {"pt": {"partial_epochs": 10}},
}


def method_preset(method: str, dataset: str, data_root: str | None = None, budget: str = "cpu") -> Dict[str, Any]:
    """The ``METHOD_PRESETS`` fields of ``method`` for a dataset (none at the paper budget)."""
    if budget == "paper":
        return {}
    return dict(METHOD_PRESETS.get(family_of(image_shape_of(dataset, data_root)), {}).get(method, {}))


def method_config(method: str, backdoor, budget: str = "cpu"):
    """``method``'s config against ``backdoor`` at ``budget``: its ``paper()`` at the paper budget
    (where it has one), else its defaults plus the data's ``METHOD_PRESETS`` fields."""
    from bdray.methods import get_method

    cls = get_method(method).config_cls
    if budget == "paper" and hasattr(cls, "paper"):
        return cls.paper(backdoor)
    return cls(backdoor=backdoor, **method_preset(method, backdoor.dataset, backdoor.data_root, budget))


# Budgets: "cpu" (the methods' CPU-sized defaults), "paper" (each paper's settings); "auto" = cpu
# for the embedded digits and a user's own npz, paper for the torchvision datasets (cifar10, ...)
CPU_BY_DEFAULT = ("digits", "npz", "digits_biased")


def resolve_budget(dataset: str, budget: str = "auto") -> str:
    if budget not in ("auto", "cpu", "paper", "smoke"):
        from bdray.config import ConfigError

        raise ConfigError("budget", budget, "one of auto, cpu, paper, smoke")
    if budget != "auto":
        return budget
    return "cpu" if dataset in CPU_BY_DEFAULT else "paper"


def image_shape_of(dataset: str, data_root: str | None = None) -> Tuple[int, int, int]:
    """(C, H, W) of a dataset's images without loading it: the known shapes, or the header of an npz
    file's ``x_train`` (or ``x``) array."""
    from bdray.data import KNOWN_SHAPES

    if dataset in KNOWN_SHAPES:
        return KNOWN_SHAPES[dataset][0]
    if dataset != "npz" or not data_root:
        from bdray.config import ConfigError

        raise ConfigError("dataset", dataset, "a dataset of known shape, or npz with --data-root")
    from bdray.data.files import npz_array_shapes

    shapes = npz_array_shapes(data_root)
    shape = shapes["x_train"] if "x_train" in shapes else shapes["x"]
    if len(shape) == 3:
        return (1, shape[1], shape[2])
    return (shape[3], shape[1], shape[2])


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


def preset_for(dataset: str, data_root: str | None = None, budget: str = "cpu",
               model: str | None = None) -> Tuple[str, Dict[str, Any]]:
    """``(family, BackdoorConfig fields)`` of a dataset at ``budget`` (resolved: cpu|paper|smoke),
    without loading it; ``model`` overrides the preset's."""
    family, values = backdoor_preset(image_shape_of(dataset, data_root), budget)
    if model:
        values["model"] = model
    return family, values


def describe(family: str, values: Dict[str, Any], budget: str = "cpu") -> str:
    shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "BackdoorConfig defaults"
    methods = METHOD_PRESETS.get(family, {}) if budget != "paper" else {}
    extra = "".join(f"; {m}: " + ", ".join(f"{k}={v}" for k, v in fields.items()) for m, fields in methods.items())
    return f"preset '{family}': {shown}{extra}"
