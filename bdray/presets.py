"""Settings that belong to the data: one table per dataset family, chosen by image shape, printed.

A family is picked from the images' shape (channels, side): the embedded 16×16 digits, 28×28 grey
digits (MNIST-like), 32×32 colour (CIFAR-like), 64×64 faces.  Each entry sets the attack model's
training (model, epochs, batch, lr, crop) for a CPU budget, for the papers' budget, and for the
papers' regime on a CPU (``paper-cpu``: the papers' small model and clean counts, epochs cut to what
2 cores train in about half an hour).  The method
defaults themselves (DHBE, ABL, PT, CBD, ...) are the papers' where they hold and are documented in
the README where they differ; ``METHOD_PRESETS`` holds the few method fields that have to change
with the data at the CPU budget, ``PAPER_SETTINGS`` each paper's own settings (the paper budget)
and ``SMOKE_SETTINGS`` the tiny sizes of smoke tests.  ``method_config`` is the one way to apply
them.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

# family -> budget -> BackdoorConfig fields
PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "digits16": {"cpu": {}, "paper": {}},  # the embedded digits: BackdoorConfig's own defaults
    "grey28": {"cpu": {"model": "small_cnn", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 2},
               "paper": {"model": "small_cnn", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 2}},
    "colour32": {"cpu": {"model": "small_cnn", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 2},
                 "paper": {"model": "resnet18", "epochs": 100, "batch_size": 128, "lr": 0.1, "crop_padding": 4},
                 # NAD's and ABL's WRN-16-1 with the papers' lr and augmentation; 20 epochs of a cosine
                 # schedule instead of 100: 70 s of training an epoch on 50,000 images on 2 cores
                 # (RESULTS "The papers' regime on a CPU"), and above 80 % clean accuracy
                 "paper-cpu": {"model": "wrn_16_1", "epochs": 20, "batch_size": 128, "lr": 0.1, "crop_padding": 4}},
    "faces64": {"cpu": {"model": "resnet9", "epochs": 20, "batch_size": 128, "lr": 0.05, "crop_padding": 4},
                "paper": {"model": "resnet9", "epochs": 100, "batch_size": 128, "lr": 0.1, "crop_padding": 4}},
}


# family -> method -> config fields at the CPU budget, where one value cannot serve every family.
# PT's M′ (a fresh model, first layers frozen) must fit the trigger but not yet the clean images:
# fewer epochs on the small digits than on 32×32 colour images.  DHBE's trigger space must stay
# far smaller than the edits that change a class (paper §3): its 5×5 generated patch is 2.4 % of a
# 32×32 image but 9.8 % of a 16×16 one; the same fraction is a 3×3 patch, with λ 1.0 keeping
# λ·L_abr where 0.5 had it with 5×5.  The measurements: RESULTS "Measurements behind the defaults".
METHOD_PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "digits16": {"dhbe": {"trigger_gen_size": 3, "lambda_abr": 1.0}},
    "colour32": {"pt": {"partial_epochs": 10}},
    "faces64": {"pt": {"partial_epochs": 10}},
}


# method -> the share of the training set its paper's defender holds clean, at the "paper-cpu"
# budget (on CIFAR-10's 50,000: NAD, fine-tuning, fine-pruning, Neural Cleanse, SAU and STRIP 5 % =
# 2,500 images; I-BAU 5,000 = 10 %; ANP and RNP 1 % = 500; FST 2 % = 1,000).  The rule is the
# papers' count relative to their training set, so a smaller dataset gets proportionally fewer.
PAPER_CLEAN_SHARES: Dict[str, float] = {
    "finetune": 0.05, "fineprune": 0.05, "nad": 0.05, "neural_cleanse": 0.05, "sau": 0.05, "strip": 0.05,
    "ibau": 0.10, "anp": 0.01, "rnp": 0.01, "fst": 0.02,
}


# the fine-tuning baselines' epoch at the paper budgets ("paper", "paper-cpu"): the DHBE paper's
# appendix trains fine-tuning, fine-pruning, NAD (and Neural Cleanse's fine-tuning) 20 epochs of
# 2,000 samples at batch 64 whatever the clean share (the subset repeated up to 2,000), so 4 % and
# 1 % clean data get the same ~625 steps: a count, as in the paper, not a share of the training
# set.  The cpu budget keeps the methods' 500-sample epoch (sized for the embedded digits).
PAPER_EPOCH_SAMPLES: Dict[str, int] = {"finetune": 2000, "fineprune": 2000, "nad": 2000, "neural_cleanse": 2000}


def paper_epoch_fields(method: str) -> Dict[str, Any]:
    """``samples_per_epoch`` of ``method`` at the paper budgets (``PAPER_EPOCH_SAMPLES``), if any."""
    return {"samples_per_epoch": PAPER_EPOCH_SAMPLES[method]} if method in PAPER_EPOCH_SAMPLES else {}


# method -> its paper's settings where they differ from the CPU-sized defaults: the "paper" budget
# (DHBE: CIFAR-10, batch 256, 300 epochs × 50 iterations, generator width 128; DBA: the paper's
# ResNet9 with Adam at a constant lr 1e-3, for the face sets)
PAPER_SETTINGS: Dict[str, Dict[str, Any]] = {
    "dhbe": dict(lambda_abr=0.1, batch_size=256, epochs=300, iters_per_epoch=50, generator_width=128,
                 bn_prior_weight=0.0, trigger_position="batch"),
    "abl": dict(isolation_epochs=20, gamma=0.5, isolation_lr=0.1, isolation_ratio=0.01, clean_epochs=60, clean_lr=0.1,
                weight_decay=1e-4, unlearn_epochs=20, unlearn_lr=5e-4, unlearn_batch_size=64, batch_size=64,
                crop_padding=4),
    "cbd": dict(fb_epochs=5, fb_lr=0.1, epochs=100, lr=0.1, lr_milestones=(0.2, 0.7), crop_padding=4, batch_size=64,
                weight_decay=1e-4, weight_normalization="batch"),
    "debias": dict(model="resnet9", lr=1e-3, lr_schedule="constant"),
}

# method -> a few epochs of everything (``smoke=True``, ``--smoke-test``): checks the plumbing, not
# the science
SMOKE_SETTINGS: Dict[str, Dict[str, Any]] = {
    "dhbe": dict(epochs=2, iters_per_epoch=3, batch_size=32),
    "abl": dict(isolation_epochs=2, clean_epochs=1, unlearn_epochs=1),
    "pt": dict(partial_epochs=1, epochs=1),
    "cbd": dict(fb_epochs=1, epochs=1),
    "finetune": dict(epochs=2, samples_per_epoch=128),
    "fineprune": dict(epochs=2, samples_per_epoch=128),
    "fst": dict(epochs=2, samples_per_epoch=128),
    "nad": dict(epochs=2, samples_per_epoch=128),
    "neural_cleanse": dict(epochs=2, samples_per_epoch=128, nc_steps=20),
    "debias": dict(epochs=2),
    "strip": dict(num_perturbations=8),
    "anp": dict(iterations=20, iters_per_epoch=10),
    "ibau": dict(rounds=2, samples_per_round=200),
    "rnp": dict(unlearn_epochs=2, recover_epochs=2, samples_per_epoch=128),
    "sau": dict(rounds=2, samples_per_round=256),
}


def method_preset(method: str, dataset: str, data_root: str | None = None, budget: str = "cpu",
                  image_size: int | None = None) -> Dict[str, Any]:
    """The fields the preset table sets for ``method`` on a dataset at ``budget``: the paper's
    settings at the paper budget, else the data family's ``METHOD_PRESETS`` fields (and at
    ``paper-cpu`` the paper's clean share, ``PAPER_CLEAN_SHARES``)."""
    if budget == "paper":
        return {**paper_epoch_fields(method), **PAPER_SETTINGS.get(method, {})}
    fields = dict(METHOD_PRESETS.get(family_of(image_shape_of(dataset, data_root, image_size)), {}).get(method, {}))
    if budget == "paper-cpu" and method in PAPER_CLEAN_SHARES:
        fields["clean_fraction"] = PAPER_CLEAN_SHARES[method]
        fields.update(paper_epoch_fields(method))
    return fields


def method_config(method: str, backdoor=None, budget: str = "cpu", smoke: bool = False, **values: Any):
    """``method``'s config: its defaults, the preset table's fields for the data and ``budget``
    (``method_preset``; methods without a ``backdoor`` get the paper budget's fields only), the
    smoke sizes with ``smoke`` (or budget ``"smoke"``), then ``values`` -- explicit values win."""
    from bdray.methods import get_method

    cls = get_method(method).config_cls
    if budget == "smoke":
        budget, smoke = "cpu", True
    fields: Dict[str, Any] = {}
    if backdoor is not None:
        fields.update(backdoor=backdoor, **method_preset(method, backdoor.dataset, backdoor.data_root, budget,
                                                                    backdoor.image_size))
    elif budget == "paper":
        fields.update(paper_epoch_fields(method), **PAPER_SETTINGS.get(method, {}))
    if smoke:
        fields.update(SMOKE_SETTINGS.get(method, {}))
    return cls(**{**fields, **values})


# Budgets: "cpu" (the methods' CPU-sized defaults), "paper" (each paper's settings), "paper-cpu"
# (the papers' model and clean counts, CPU-sized epochs); "auto" = cpu for the embedded digits and a
# user's own files (npz, folder), paper for the torchvision datasets (cifar10, ...)
BUDGETS = ("auto", "cpu", "paper", "paper-cpu", "smoke")
CPU_BY_DEFAULT = ("digits", "npz", "folder", "digits_biased")


def resolve_budget(dataset: str, budget: str = "auto") -> str:
    if budget not in BUDGETS:
        from bdray.config import ConfigError

        raise ConfigError("budget", budget, f"one of {', '.join(BUDGETS)}")
    if budget != "auto":
        return budget
    return "cpu" if dataset in CPU_BY_DEFAULT else "paper"


def image_shape_of(dataset: str, data_root: str | None = None, image_size: int | None = None) -> Tuple[int, int, int]:
    """(C, H, W) of a dataset's images without loading it: the known shapes, the header of an npz
    file's ``x_train`` (or ``x``) array, or a class-folder dataset's cached summary."""
    from bdray.data import dataset_shape

    if dataset not in ("npz", "folder") or data_root:
        known = dataset_shape(dataset, data_root, image_size)
        if known is not None:
            return tuple(known[0])
    from bdray.config import ConfigError

    raise ConfigError("dataset", dataset, "a dataset of known shape, or npz / folder with --data-root")


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
    """``(family, BackdoorConfig fields)`` for images of ``image_shape`` at ``budget`` (cpu, paper,
    paper-cpu; a smoke budget uses the cpu preset, a family without a paper-cpu entry its cpu one)."""
    family = family_of(image_shape)
    table = PRESETS[family]
    return family, dict(table.get(budget, table["cpu"]) if budget in ("paper", "paper-cpu") else table["cpu"])


def preset_for(dataset: str, data_root: str | None = None, budget: str = "cpu",
               model: str | None = None, image_size: int | None = None) -> Tuple[str, Dict[str, Any]]:
    """``(family, BackdoorConfig fields)`` of a dataset at ``budget`` (resolved: cpu|paper|smoke),
    without loading it; ``model`` overrides the preset's."""
    family, values = backdoor_preset(image_shape_of(dataset, data_root, image_size), budget)
    if model:
        values["model"] = model
    return family, values


def describe(family: str, values: Dict[str, Any], budget: str = "cpu") -> str:
    shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "BackdoorConfig defaults"
    methods = {m: dict(f) for m, f in METHOD_PRESETS.get(family, {}).items()} if budget != "paper" else {}
    if budget == "paper-cpu":
        for m, share in PAPER_CLEAN_SHARES.items():
            methods.setdefault(m, {}).update(clean_fraction=share, **paper_epoch_fields(m))
    extra = "".join(f"; {m}: " + ", ".join(f"{k}={v}" for k, v in fields.items()) for m, fields in methods.items())
    return f"preset '{family}': {shown}{extra}"
