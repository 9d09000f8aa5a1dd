"""The training layer: one engine every method's epochs run on (``Engine``, ``Phase``, ``Update``),
its batch sources, the device settings (``DeviceSettings``, ``FastPath``) and the per-epoch seed."""
from bdray.train.device import FastPath, check_speed_fields, synchronize
from bdray.train.engine import Batch, Engine, EpochInfo, Phase, Update, cross_entropy
from bdray.train.settings import AugmentedTrainSettings, DeviceSettings, TrainSettings, epoch_generator

__all__ = ["AugmentedTrainSettings", "Batch", "DeviceSettings", "TrainSettings", "Engine", "EpochInfo", "FastPath", "Phase", "Update", "check_speed_fields", "cross_entropy",
           "epoch_generator", "synchronize"]
