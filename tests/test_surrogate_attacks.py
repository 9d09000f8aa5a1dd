"""Trojan and clean-label attacks, which build on a clean surrogate model."""
import pytest
import torch

from bdray.attacks import build_trigger, poison_split
from bdray.attacks.surrogate import pgd_away_from_label
from bdray.data import load_dataset, to_float
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.models import create_model
from bdray.runtime import run_local


def tiny_surrogate():
    data = load_dataset("digits")
    model = create_model("small_cnn", data.image_shape, 10, data.mean, data.std).eval()
    return model, to_float(data.train.images[:64])


def test_trojan_needs_a_surrogate_and_optimises_a_patch():
    with pytest.raises(ValueError, match="surrogate"):
        build_trigger("trojan", {}, (1, 16, 16))
    trig = build_trigger("trojan", {"steps": 5, "trigger_size": 3}, (1, 16, 16), surrogate=tiny_surrogate)
    assert trig.is_patch and trig.patch.shape == (1, 3, 3) and 0 <= float(trig.patch.min()) <= 1
    again = build_trigger("trojan", {"trigger_size": 3}, (1, 16, 16), state=trig.state())
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(trig.apply(x), again.apply(x))   # the stored state rebuilds the same trigger


def test_trojan_target_class_follows_the_backdoor_config():
    cfg = BackdoorConfig(attack="trojan", target_class=7)
    assert cfg.attack_params["target_class"] == 7


def test_pgd_stays_within_epsilon_and_clean_label_keeps_labels():
    model, images = tiny_surrogate()
    labels = torch.zeros(len(images), dtype=torch.long)
    x = pgd_away_from_label(model, images, labels, epsilon=8 / 255, steps=3, step_size=2 / 255)
    assert float((x - images).abs().max()) <= 8 / 255 + 1e-6 and not torch.equal(x, images)
    data = load_dataset("digits")
    trig = build_trigger("clean_label", {"pgd_steps": 2}, data.image_shape, surrogate=tiny_surrogate)
    out = poison_split(data.train, trig, rate=0.05, target_class=0, label_mode="clean", seed=0)
    assert trig.clean_label and torch.equal(out.split.labels, data.train.labels)
    assert (data.train.labels[out.poison_indices] == 0).all()


@pytest.mark.slow
def test_trojan_backdoor_is_effective(artifact_root):
    result = run_local("backdoor", BackdoorConfig(attack="trojan", epochs=10), device="cpu",
                       artifact_root=artifact_root, verbose=False)
    assert result.metrics["acc"] >= 0.9 and result.metrics["asr"] >= 0.9
