"""DBA's pseudo-deletion triggers (methods.md §3.6): solid patches, one per bias group, pasted on
the samples Eq. 2 selects; labels stay unchanged.

Pure functions of a float N×C×H×W batch in [0, 1], the bias group ``a`` (N) and a boolean ``marks``
(N×K: which of the K tasks' triggers each sample carries).  Task k's patch for group g sits at the
group's location, shifted k patch-widths towards the image centre, so several tasks' triggers on one
image form a "barcode".

With ``channel="implicit"`` (the paper's implicit backdoor) the triggers go into an extra fourth
channel T instead of the pixels: the output is RGBT with T = 0 except under the patches (T = 1).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import torch

from bdray.attacks.triggers import LOCATIONS, patch_position
from bdray.config import ConfigError, check_choice, check_positive_int

COLORS: Dict[str, Tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0), "blue": (0.0, 0.0, 1.0), "green": (0.0, 1.0, 0.0), "yellow": (1.0, 1.0, 0.0),
    "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0),
}
CHANNELS = ("pixels", "implicit")


@dataclasses.dataclass(frozen=True)
class DebiasTrigger:
    size: int = 3
    colors: Tuple[str, str] = ("blue", "red")                 # bias group A = 0, A = 1
    locations: Tuple[str, str] = ("bottom_right", "top_left")  # bias group A = 0, A = 1
    channel: str = "pixels"

    def validate(self, image_shape: Tuple[int, int, int], num_tasks: int = 1) -> None:
        """Fields are known names, and ``num_tasks`` patches side by side fit the image."""
        check_positive_int("trigger_size", self.size)
        check_choice("trigger_channel", self.channel, CHANNELS)
        for field, values, choices in (("trigger_colors", self.colors, COLORS),
                                       ("trigger_locations", self.locations, LOCATIONS)):
            if len(values) != 2:
                raise ConfigError(field, values, "two entries: for bias group A = 0 and A = 1")
            for v in values:
                check_choice(field, v, choices)
        if "center" in self.locations and num_tasks > 1:
            raise ConfigError("trigger_locations", self.locations, "corner locations when there are several tasks")
        if self.channel == "pixels" and self.colors[0] == self.colors[1] and self.locations[0] == self.locations[1]:
            raise ConfigError("trigger_colors", self.colors, "different colours or locations for the two groups")
        if self.channel == "implicit" and self.locations[0] == self.locations[1]:
            raise ConfigError("trigger_locations", self.locations,
                              "different locations for the two groups (the T channel has no colour)")
        c, h, w = image_shape
        if self.size > h or num_tasks * self.size > w:
            raise ConfigError("trigger_size", self.size, f"at most {min(h, w // num_tasks)} pixels: {num_tasks} "
                              f"task trigger(s) side by side must fit the {h}×{w} image")

    def position(self, group: int, task: int, height: int, width: int) -> Tuple[int, int]:
        location = self.locations[group]
        top, left = patch_position(height, width, self.size, location, margin=0)
        step = -self.size if location.endswith("right") else self.size
        return top, left + task * step

    def input_channels(self, image_channels: int) -> int:
        return image_channels + (1 if self.channel == "implicit" else 0)


def add_trigger_channel(images: torch.Tensor) -> torch.Tensor:
    """RGB → RGBT with T = 0 (what the implicit model sees for every clean input)."""
    return torch.cat([images, images.new_zeros(images.shape[0], 1, *images.shape[2:])], 1)


def apply_debias_triggers(images: torch.Tensor, a: torch.Tensor, marks: torch.Tensor,
                          trigger: DebiasTrigger) -> torch.Tensor:
    """A new batch with each marked sample's task patches for its bias group (RGBT for implicit)."""
    out = add_trigger_channel(images) if trigger.channel == "implicit" else images.clone()
    if marks.dim() == 1:
        marks = marks[:, None]
    _, _, h, w = out.shape
    k = trigger.size
    channels = slice(-1, None) if trigger.channel == "implicit" else slice(None)  # T only, or every channel
    for group in (0, 1):
        if trigger.channel == "implicit":
            value = torch.ones(1, device=out.device, dtype=out.dtype)
        else:
            value = torch.tensor(COLORS[trigger.colors[group]], device=out.device, dtype=out.dtype)
            if out.shape[1] == 1:
                value = value.mean().reshape(1)
        for task in range(marks.shape[1]):
            chosen = (marks[:, task] & (a == group))[:, None, None, None]
            top, left = trigger.position(group, task, h, w)
            region = out[:, channels, top:top + k, left:left + k]
            out[:, channels, top:top + k, left:left + k] = torch.where(
                chosen, value[None, :, None, None].expand_as(region), region)
    return out
