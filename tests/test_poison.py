import pytest
import torch

from bdray.attacks import build_trigger, poison_split
from bdray.config import ConfigError
from bdray.data import Split


def make_split(n=200, classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 16, 16), generator=gen, dtype=torch.uint8)
    return Split(images, torch.arange(n) % classes)


def test_dirty_label_poisoning_exact_count_and_relabel():
    split = make_split()
    trig = build_trigger("badnets", {}, (1, 16, 16))
    out = poison_split(split, trig, rate=0.1, target_class=3, label_mode="dirty", seed=1)
    idx = out.poison_indices
    assert len(idx) == 20 and len(torch.unique(idx)) == 20
    assert (split.labels[idx] != 3).all()                 # drawn from non-target classes
    assert (out.split.labels[idx] == 3).all()             # relabelled to the target
    rest = torch.ones(len(split), dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(out.split.labels[rest], split.labels[rest])
    assert torch.equal(out.split.images[rest], split.images[rest])
    expected = (trig.apply(split.images[idx].float() / 255) * 255).round().to(torch.uint8)
    assert torch.equal(out.split.images[idx], expected)
    assert out.is_poisoned.sum() == 20


def test_clean_label_poisoning_keeps_labels_and_uses_target_class():
    split = make_split()
    trig = build_trigger("sig", {}, (1, 16, 16))
    out = poison_split(split, trig, rate=0.05, target_class=2, label_mode="clean", seed=0)
    assert len(out.poison_indices) == 10
    assert (split.labels[out.poison_indices] == 2).all()
    assert torch.equal(out.split.labels, split.labels)


def test_poisoning_is_seeded():
    split = make_split()
    trig = build_trigger("badnets", {}, (1, 16, 16))
    a = poison_split(split, trig, rate=0.1, target_class=0, label_mode="dirty", seed=5).poison_indices
    b = poison_split(split, trig, rate=0.1, target_class=0, label_mode="dirty", seed=5).poison_indices
    c = poison_split(split, trig, rate=0.1, target_class=0, label_mode="dirty", seed=6).poison_indices
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rate_zero_poisons_nothing():
    split = make_split()
    out = poison_split(split, build_trigger("badnets", {}, (1, 16, 16)), rate=0.0, target_class=0,
                       label_mode="dirty", seed=0)
    assert len(out.poison_indices) == 0 and torch.equal(out.split.images, split.images)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_outside_unit_interval_is_rejected(rate):
    with pytest.raises(ConfigError, match="poison_rate"):
        poison_split(make_split(), build_trigger("badnets", {}, (1, 16, 16)), rate=rate, target_class=0,
                     label_mode="dirty", seed=0)


def test_clean_label_rate_above_target_share_is_rejected():
    with pytest.raises(ConfigError, match="target-class"):
        poison_split(make_split(), build_trigger("sig", {}, (1, 16, 16)), rate=0.5, target_class=0,
                     label_mode="clean", seed=0)


def test_wanet_noise_mode_adds_cross_samples_with_true_labels():
    split = make_split(n=100)
    trig = build_trigger("wanet", {"cross_ratio": 2.0}, (1, 16, 16))
    out = poison_split(split, trig, rate=0.1, target_class=0, label_mode="dirty", seed=0)
    assert len(out.cross_indices) == 20
    assert not set(out.cross_indices.tolist()) & set(out.poison_indices.tolist())
    assert torch.equal(out.split.labels[out.cross_indices], split.labels[out.cross_indices])
