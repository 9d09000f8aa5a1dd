"""Models by name: ``create_model("small_cnn", image_shape=(1, 16, 16), num_classes=10, ...)``."""
from __future__ import annotations

from typing import Sequence, Tuple

from bdray.models.classifier import ImageClassifier
from bdray.models.resnet import preact_resnet18, resnet18
from bdray.models.resnet9 import ResNet9
from bdray.models.small_cnn import SmallCNN
from bdray.models.wrn import wrn_16_1
from bdray.registry import Registry

MODELS: Registry = Registry("model")
MODELS.register("small_cnn", lambda in_channels, num_classes, image_size: SmallCNN(in_channels, num_classes),
                description="a small CNN for CPU budgets (the default)")
MODELS.register("resnet18", resnet18, description="ResNet-18, CIFAR variant")
MODELS.register("preact_resnet18", preact_resnet18, description="PreAct-ResNet-18 (BackdoorBench's model)")
MODELS.register("wrn_16_1", wrn_16_1, description="WRN-16-1 (the NAD and ABL papers' model)")
MODELS.register("resnet9", lambda in_channels, num_classes, image_size: ResNet9(in_channels, num_classes),
                description="ResNet9 (the DBA paper's backbone)")


def create_model(name: str, image_shape: Tuple[int, int, int], num_classes: int,
                 mean: Sequence[float], std: Sequence[float]) -> ImageClassifier:
    factory = MODELS.get(name, field="model")
    c, h, _ = image_shape
    return ImageClassifier(factory(in_channels=c, num_classes=num_classes, image_size=h), mean, std)


__all__ = ["MODELS", "ImageClassifier", "create_model"]
