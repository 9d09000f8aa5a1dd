"""Configs and flags shared by the DBA sweep scripts (``dba_methods.py``, ``dba_trigger.py``): the
attribute-data flags, the digits-sized defaults or the paper's training on faces (the preset
table's paper settings), and tiny trainings for ``--smoke-test``."""
from __future__ import annotations

from bdray.data.attributes import ATTRIBUTE_DATASET_NAMES, attribute_source
from bdray.data.faces import CELEBA_GENDER_EXCLUDED
from bdray.methods.fairness.debias import DebiasConfig
from bdray.presets import method_config


def add_data_args(parser) -> None:
    add = parser.add_argument
    add("--dataset", default="digits_biased", choices=sorted(ATTRIBUTE_DATASET_NAMES),
        help="digits_biased (embedded, no download), celeba, utkface, npz (your own attribute file)")
    add("--data-root", default=None, help="data folder (CelebA: <root>/celeba/, UTKFace: <root>/UTKFace/) or, "
        "for npz, the .npz with x, y (targets), a (bias attributes)")
    add("--download", action="store_true", help="let torchvision download CelebA")
    add("--bias", default=None, help="bias attribute (default: stroke_colour / Male / race_white)")
    add("--bias-strength", type=float, default=0.9, help="digits_biased: share of each class with A = Y")
    add("--model", default=None, help="small_cnn (digits default), resnet9 (faces default, the paper's)")
    add("--image-size", type=int, default=64, help="faces: square side after resizing")
    add("--epochs", type=int, default=None)


def base_config(args, **overrides) -> DebiasConfig:
    values = {"dataset": args.dataset, "data_root": args.data_root, "download": args.download,
              "bias_attribute": args.bias, "bias_strength": args.bias_strength, "image_size": args.image_size}
    if args.model:
        values["model"] = args.model
    if args.epochs:
        values["epochs"] = args.epochs
    values.update(overrides)
    # the embedded digits and a user's own file get the CPU-sized defaults, the face sets the paper's
    cpu = args.dataset in ("digits_biased", "npz")
    return method_config("debias", budget="cpu" if cpu else "paper", smoke=args.smoke_test, **values)


def all_targets(dataset: str, bias: str, data_root=None) -> list:
    """The paper's targets: CelebA every attribute but the bias (with Male as bias also without the
    five the paper leaves out as unsuitable: 34 targets; with Young 39), UTKFace age > 35, the
    embedded digits every digit property, an npz file every target column."""
    source = attribute_source(dataset, data_root)
    if dataset == "utkface":
        return [t for t in source.default_targets if t != bias]
    skip = {bias, *(CELEBA_GENDER_EXCLUDED if dataset == "celeba" and bias == "Male" else ())}
    return [t for t in source.targets if t not in skip]
