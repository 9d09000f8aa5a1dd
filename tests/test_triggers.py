import pytest
import torch

from bdray.attacks import build_trigger
from bdray.attacks.triggers import amplified_positions, checkerboard
from bdray.config import ConfigError

SHAPES = [(1, 16, 16), (3, 32, 32)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["badnets", "blend", "sig", "wanet"])
def test_trigger_keeps_shape_and_range(name, shape):
    x = torch.rand(5, *shape)
    y = build_trigger(name, {}, shape).apply(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(x, y)


def test_badnets_changes_only_the_patch():
    shape = (3, 32, 32)
    trig = build_trigger("badnets", {"trigger_size": 4, "margin": 1}, shape)
    x = torch.rand(3, *shape)
    y = trig.apply(x)
    changed = (x != y).any(dim=(0, 1))
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.min() >= 32 - 1 - 4 and rows.max() <= 32 - 1 - 1
    assert cols.min() >= 32 - 1 - 4 and cols.max() <= 32 - 1 - 1
    assert torch.equal(y[:, :, 27:31, 27:31], checkerboard(4, 3).expand(3, -1, -1, -1))
    assert torch.equal(x[:, :, :27], y[:, :, :27])


def test_badnets_solid_and_location():
    trig = build_trigger("badnets", {"trigger_size": 2, "pattern": "solid", "color": 0.5, "location": "top_left",
                                     "margin": 0}, (1, 8, 8))
    y = trig.apply(torch.zeros(1, 1, 8, 8))
    assert torch.equal(y[0, 0, :2, :2], torch.full((2, 2), 0.5))
    assert float(y.sum()) == pytest.approx(2.0)


def test_amplified_trigger_pastes_4_and_9_patches():
    trig = build_trigger("badnets", {"trigger_size": 3, "pattern": "solid"}, (1, 16, 16))
    x = torch.zeros(1, 1, 16, 16)
    assert float(trig.apply(x).sum()) == 9
    assert float(trig.apply_amplified(x, 4).sum()) == 4 * 9
    assert float(trig.apply_amplified(x, 9).sum()) == 9 * 9
    assert len(set(amplified_positions(16, 16, 3, 1, 9))) == 9


def test_amplified_trigger_is_only_for_patches():
    with pytest.raises(ValueError, match="not a patch"):
        build_trigger("blend", {}, (1, 16, 16)).apply_amplified(torch.zeros(1, 1, 16, 16), 4)


def test_blend_uses_one_fixed_pattern():
    trig = build_trigger("blend", {"alpha": 0.2}, (1, 8, 8))
    x = torch.zeros(4, 1, 8, 8)
    y = trig.apply(x)
    assert torch.allclose(y[0], y[1]) and torch.allclose(y, 0.2 * trig.pattern.expand(4, -1, -1, -1))
    again = build_trigger("blend", {"alpha": 0.2}, (1, 8, 8))
    assert torch.equal(trig.pattern, again.pattern)


def test_sig_is_a_horizontal_sinusoid():
    trig = build_trigger("sig", {"delta": 0.1, "frequency": 6}, (1, 8, 16))
    y = trig.apply(torch.full((1, 1, 8, 16), 0.5))
    assert torch.allclose(y[0, 0, 0], y[0, 0, 5])  # constant down the columns
    assert float((y - 0.5).abs().max()) <= 0.1 + 1e-6
    assert trig.clean_label


def test_wanet_warp_is_small_and_deterministic():
    shape = (3, 32, 32)
    x = torch.rand(2, *shape)
    a = build_trigger("wanet", {}, shape).apply(x)
    b = build_trigger("wanet", {}, shape).apply(x)
    assert torch.equal(a, b)
    assert float((a - x).abs().mean()) < 0.2


@pytest.mark.parametrize("name, params, field", [
    ("badnets", {"trigger_size": 0}, "trigger_size"),
    ("badnets", {"pattern": "stripes"}, "pattern"),
    ("badnets", {"location": "middle"}, "location"),
    ("badnets", {"color": 2.0}, "color"),
    ("blend", {"alpha": 0.0}, "alpha"),
    ("blend", {"alpha": 1.5}, "alpha"),
    ("sig", {"delta": -0.1}, "delta"),
    ("wanet", {"grid_size": 1}, "grid_size"),
    ("wanet", {"strength": 0}, "strength"),
    ("badnets", {"size": 3}, "BadNetsParams.size"),
])
def test_trigger_parameters_are_validated(name, params, field):
    with pytest.raises(ConfigError) as err:
        build_trigger(name, params, (1, 16, 16))
    assert err.value.field == field


def test_trigger_larger_than_image_is_rejected():
    with pytest.raises(ConfigError, match="trigger_size"):
        build_trigger("badnets", {"trigger_size": 16}, (1, 16, 16))


def test_unknown_attack_is_rejected():
    with pytest.raises(ConfigError, match="attack='nope'"):
        build_trigger("nope", {}, (1, 16, 16))
