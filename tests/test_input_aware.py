"""The input-aware dynamic attack: per-image triggers from trained generators, rebuilt exactly
from their stored weights, and a backdoor that works on the embedded digits."""
import pytest
import torch

from bdray.attacks import attack_params, build_trigger
from bdray.config import ConfigError
from bdray.data import load_dataset, to_float
from bdray.models import create_model


@pytest.fixture(scope="module")
def small_trigger():
    data = load_dataset("digits")
    images = to_float(data.train.images[:256])
    model = create_model("small_cnn", data.image_shape, 10, data.mean, data.std).eval()
    params = {"steps": 20, "mask_steps": 10, "batch_size": 64}
    return build_trigger("input_aware", params, data.image_shape, 0, surrogate=lambda: (model, images)), images, params


def test_triggers_are_per_image_and_rebuild_exactly_from_state(small_trigger):
    trigger, images, params = small_trigger
    x = images[:16]
    out = trigger.apply(x)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    residual = out - x
    assert not torch.allclose(residual[0], residual[1], atol=1e-4)  # input-aware: not one fixed pattern
    rebuilt = build_trigger("input_aware", params, (1, 16, 16), 0, state=trigger.state())
    assert torch.equal(rebuilt.apply(x), out)
    assert all(isinstance(v, torch.Tensor) for v in trigger.state().values())  # loads with weights_only


def test_bad_input_aware_parameters_are_named():
    with pytest.raises(ConfigError, match="cross_prob"):
        attack_params("input_aware", {"backdoor_prob": 0.6, "cross_prob": 0.5})
    with pytest.raises(ConfigError, match="multiples of 4"):
        attack_params("input_aware").check_fits((3, 30, 30))


@pytest.mark.slow
def test_input_aware_backdoor_works_on_digits(artifact_root):
    from bdray.methods.attack.threat import backdoored_model
    from bdray.methods.attack.backdoor import BackdoorConfig
    from bdray.train.context import LocalContext

    _, metrics = backdoored_model(BackdoorConfig(attack="input_aware"),
                                  LocalContext("cpu", artifact_root=artifact_root, verbose=False))
    print(f"\ninput-aware backdoor: acc={metrics['acc']:.4f} asr={metrics['asr']:.4f}")
    assert metrics["acc"] >= 0.93
    assert metrics["asr"] >= 0.85
