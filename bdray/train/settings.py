"""What every method trained on the engine declares once (device use, seed, batch size,
augmentation), and the per-epoch seed."""
from __future__ import annotations

import dataclasses

import torch

from bdray.config import Config, check_number, check_positive_int
from bdray.train.device import check_speed_fields

EPOCH_SEED_STRIDE = 100_003  # a prime: the epochs of seeds s and s + 1 never share a generator seed


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator every random draw of epoch ``epoch`` (0-based, counted over the whole run)
    comes from: shuffling, augmentation, batch cycling.  Drawn on the CPU, so every device sees the
    same batches."""
    return torch.Generator().manual_seed(seed * EPOCH_SEED_STRIDE + epoch)


@dataclasses.dataclass
class DeviceSettings(Config):
    """Device use of a method's training (``bdray.train.device``): ``"auto"`` is bf16 autocast on
    CUDA (fp16 with gradient scaling where bf16 is missing), fp32 on a CPU; channels_last on."""

    precision: str = "auto"      # auto, fp32, bf16, fp16
    channels_last: str = "auto"  # auto (= on), on, off
    compile: bool = False        # torch.compile the modules the training steps call

    def validate(self) -> None:
        check_speed_fields(self)


@dataclasses.dataclass
class TrainSettings(DeviceSettings):
    """What every method trained on the engine declares once: its seed (the engine's per-epoch
    generators, the model's initialisation), its batch size and the device settings.  A method
    with other defaults re-declares the field with its own default."""

    seed: int = 0
    batch_size: int = 128

    def validate(self) -> None:
        check_number("seed", self.seed, low=0, integer=True)
        check_positive_int("batch_size", self.batch_size)
        super().validate()


@dataclasses.dataclass
class AugmentedTrainSettings(TrainSettings):
    """``TrainSettings`` of a method that trains on images: plus the batched augmentation of the
    uint8 batch (random crop with ``crop_padding``; flips follow the dataset)."""

    crop_padding: int = 2  # 0 = no random crop

    def validate(self) -> None:
        check_number("crop_padding", self.crop_padding, low=0, integer=True)
        super().validate()
