"""Configs and flags shared by the DBA sweep scripts (``dba_methods.py``, ``dba_trigger.py``): the
attribute-data flags, the digits-sized defaults or the paper's training on faces (``.paper()``),
and tiny trainings for ``--smoke-test``."""
from __future__ import annotations

from bdray.data.attributes import SOURCES
from bdray.data.faces import CELEBA_GENDER_EXCLUDED
from bdray.methods.debias import DebiasConfig

SMOKE = {"epochs": 2}


def add_data_args(parser) -> None:
    add = parser.add_argument
    add("--dataset", default="digits_biased", choices=sorted(SOURCES),
        help="digits_biased (embedded, no download), celeba, utkface")
    add("--data-root", default=None, help="data folder (CelebA: <root>/celeba/, UTKFace: <root>/UTKFace/)")
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
    cfg = DebiasConfig(**values) if args.dataset == "digits_biased" else DebiasConfig.paper(**values)
    return cfg.replace(**SMOKE) if args.smoke_test else cfg


def all_targets(dataset: str, bias: str) -> list:
    """The paper's targets: CelebA every attribute but the bias (with Male as bias also without the
    five the paper leaves out as unsuitable: 34 targets; with Young 39), UTKFace age > 35, the
    embedded digits every digit property."""
    source = SOURCES[dataset]
    if dataset == "utkface":
        return [t for t in source.default_targets if t != bias]
    skip = {bias, *(CELEBA_GENDER_EXCLUDED if dataset == "celeba" and bias == "Male" else ())}
    return [t for t in source.targets if t not in skip]
