"""Attack declarations: validated parameters, and the trigger they build for an image shape."""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

import torch

from bdray.attacks import triggers as T
from bdray.config import Config, ConfigError, check_choice, check_number, check_positive, check_positive_int
from bdray.registry import Registry

ImageShape = Tuple[int, int, int]


class Trigger:
    """A trigger built for one image shape: ``apply`` is pure and batched."""

    name = "trigger"
    clean_label = False  # whether the attack poisons target-class images and keeps labels
    is_patch = False     # whether amplified (×4, ×9) pastes make sense

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def poison(self, images: torch.Tensor, labels: torch.Tensor,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """How training images are poisoned (default: the test-time trigger itself); ``generator``
        is the poisoning's seeded generator, for triggers that vary per sample."""
        return self.apply(images)

    def state(self) -> Dict[str, torch.Tensor]:
        """Tensors that rebuild this exact trigger (stored with the attack artifact)."""
        return {}

    def apply_amplified(self, images: torch.Tensor, times: int) -> torch.Tensor:
        raise ValueError(f"the {self.name} trigger is not a patch; amplified triggers apply to patch triggers")


@dataclasses.dataclass
class AttackParams(Config):
    """Declared parameters of an attack.  ``build`` makes its trigger for an image shape;
    attacks with ``needs_surrogate`` get a callable returning a clean surrogate model, and
    ``state`` (from ``Trigger.state()``) rebuilds a trigger that was optimised earlier; attacks
    with ``needs_images`` get ``images=``, a callable returning the clean training images."""

    needs_surrogate = False
    needs_images = False

    def check_fits(self, image_shape: ImageShape) -> None:
        """Raise a ConfigError if this trigger cannot be applied to images of this shape."""

    def build(self, image_shape: ImageShape, seed: int, *, surrogate: Optional[Callable] = None,
              state: Optional[Dict[str, torch.Tensor]] = None) -> Trigger:
        raise NotImplementedError


ATTACKS: Registry = Registry("attack")


# --- BadNets -----------------------------------------------------------------------------

class PatchTrigger(Trigger):
    is_patch = True

    def __init__(self, name: str, patch: torch.Tensor, position: Tuple[int, int], margin: int, image_shape):
        self.name, self.patch, self.position, self.margin = name, patch, position, margin
        self.image_shape = image_shape

    def apply(self, images):
        return T.paste_patch(images, self.patch, [self.position])

    def state(self):
        return {"patch": self.patch.detach().cpu()}

    def apply_amplified(self, images, times):
        _, h, w = self.image_shape
        return T.paste_patch(images, self.patch, T.amplified_positions(h, w, self.patch.shape[-1], self.margin, times))


@ATTACKS.register("badnets")
@dataclasses.dataclass
class BadNetsParams(AttackParams):
    """BadNets: paste a k×k pattern at a corner (methods.md §2.1)."""

    trigger_size: int = 3
    pattern: str = "checkerboard"   # or "solid"
    color: float = 1.0              # pixel value of a solid patch
    location: str = "bottom_right"
    margin: int = 1

    def validate(self):
        check_positive_int("trigger_size", self.trigger_size)
        check_choice("pattern", self.pattern, ("checkerboard", "solid"))
        check_number("color", self.color, low=0.0, high=1.0)
        check_choice("location", self.location, T.LOCATIONS)
        check_number("margin", self.margin, low=0, integer=True)

    def check_fits(self, image_shape):
        _, h, w = image_shape
        if self.trigger_size + 2 * self.margin > min(h, w):
            raise ConfigError("trigger_size", self.trigger_size,
                              f"a patch that fits the {h}×{w} image with margin {self.margin}: "
                              f"trigger_size <= {min(h, w) - 2 * self.margin}")

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        self.check_fits(image_shape)
        c, h, w = image_shape
        patch = (T.checkerboard(self.trigger_size, c) if self.pattern == "checkerboard"
                 else T.solid(self.trigger_size, c, self.color))
        pos = T.patch_position(h, w, self.trigger_size, self.location, self.margin)
        return PatchTrigger("badnets", patch, pos, self.margin, image_shape)


# --- Blend -------------------------------------------------------------------------------

class BlendTrigger(Trigger):
    name = "blend"

    def __init__(self, pattern: torch.Tensor, alpha: float):
        self.pattern, self.alpha = pattern, alpha

    def apply(self, images):
        return T.blend(images, self.pattern, self.alpha)


@ATTACKS.register("blend")
@dataclasses.dataclass
class BlendParams(AttackParams):
    """Blend with one fixed seeded uniform-noise pattern (methods.md §2.2)."""

    alpha: float = 0.2
    pattern_seed: int = 0

    def validate(self):
        check_number("alpha", self.alpha, low=0.0, high=1.0, low_open=True)
        check_number("pattern_seed", self.pattern_seed, low=0, integer=True)

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        return BlendTrigger(T.make_noise_pattern(image_shape, self.pattern_seed), self.alpha)


# --- SIG ---------------------------------------------------------------------------------

class SigTrigger(Trigger):
    name = "sig"
    clean_label = True

    def __init__(self, delta: float, frequency: float):
        self.delta, self.frequency = delta, frequency

    def apply(self, images):
        return T.sig(images, self.delta, self.frequency)


@ATTACKS.register("sig")
@dataclasses.dataclass
class SigParams(AttackParams):
    """SIG, a clean-label sinusoidal signal (methods.md §2.3)."""

    delta: float = 20 / 255
    frequency: float = 6.0

    def validate(self):
        check_number("delta", self.delta, low=0.0, high=1.0, low_open=True)
        check_positive("frequency", self.frequency)

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        return SigTrigger(self.delta, self.frequency)


# --- WaNet -------------------------------------------------------------------------------

class WarpTrigger(Trigger):
    name = "wanet"

    def __init__(self, grid: torch.Tensor, cross_ratio: float):
        self.grid, self.cross_ratio = grid, cross_ratio

    def apply(self, images):
        return T.warp(images, self.grid)

    def apply_noise(self, images, generator: torch.Generator):
        """Noise mode: warp with the grid plus per-image jitter (labels are kept)."""
        g = T.wanet_noise_grid(self.grid, images.shape[0], generator)
        return T.warp(images, g)


@ATTACKS.register("wanet")
@dataclasses.dataclass
class WaNetParams(AttackParams):
    """WaNet warping (methods.md §2.4)."""

    grid_size: int = 4
    strength: float = 0.5
    cross_ratio: float = 2.0
    grid_seed: int = 0

    def validate(self):
        check_number("grid_size", self.grid_size, low=2, integer=True)
        check_positive("strength", self.strength)
        check_number("cross_ratio", self.cross_ratio, low=0.0)
        check_number("grid_seed", self.grid_seed, low=0, integer=True)

    def check_fits(self, image_shape):
        _, h, w = image_shape
        if self.grid_size > min(h, w):
            raise ConfigError("grid_size", self.grid_size, f"at most the image side {min(h, w)}")

    def build(self, image_shape, seed, *, surrogate=None, state=None):
        self.check_fits(image_shape)
        _, h, w = image_shape
        return WarpTrigger(T.make_wanet_grid(h, w, self.grid_size, self.strength, self.grid_seed), self.cross_ratio)


def attack_params(name: str, params: dict | None = None) -> AttackParams:
    """Validated parameters of the named attack (unknown names and fields are errors)."""
    cls = ATTACKS.get(name, field="attack")
    return cls.from_dict(params or {})


def build_trigger(name: str, params: dict | None, image_shape: ImageShape, seed: int = 0, *,
                  surrogate: Optional[Callable] = None, state: Optional[Dict[str, torch.Tensor]] = None,
                  images: Optional[Callable] = None) -> Trigger:
    spec = attack_params(name, params)
    if spec.needs_surrogate and surrogate is None and not state:
        raise ValueError(f"the {name} attack builds its trigger on a surrogate model: pass surrogate= "
                         f"(or the stored trigger state)")
    if spec.needs_images:
        if images is None and not state:
            raise ValueError(f"the {name} attack builds its trigger from the training images: pass images= "
                             f"(or the stored trigger state)")
        return spec.build(image_shape, seed, surrogate=surrogate, state=state, images=images)
    return spec.build(image_shape, seed, surrogate=surrogate, state=state)
