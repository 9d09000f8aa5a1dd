"""Device settings of the training loops (bdray.train.device), checked on a CPU: bf16 autocast,
fp16 with gradient scaling, channels_last and torch.compile each train and are reported."""
import pytest
import torch

from bdray.config import ConfigError
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.dhbe import DHBEConfig
from bdray.runtime import run_local
from bdray.train.device import FastPath, resolve_channels_last, resolve_precision


def _backdoor(epochs=4, **speed):
    torch.set_num_threads(2)
    return run_local("backdoor", BackdoorConfig(epochs=epochs, **speed), device="cpu", verbose=False)


@pytest.fixture(scope="module")
def fp32_run():
    return _backdoor()


def test_auto_is_fp32_channels_last_on_cpu(fp32_run):
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_channels_last("auto", torch.device("cpu")) and not resolve_channels_last("off", torch.device("cpu"))
    last = fp32_run.history[-1]
    assert (last["precision_used"], last["channels_last_used"], last["compiled"]) == ("fp32", 1, 0)
    assert last["compile_time_s"] == 0.0
    assert last["train_images_per_s"] > 0 and 0 < last["train_time_s"] <= last["epoch_time_s"]


def test_bf16_autocast_trains_as_well(fp32_run):
    bf16 = _backdoor(precision="bf16")
    assert bf16.history[-1]["precision_used"] == "bf16"
    assert bf16.metrics["train_loss"] != fp32_run.metrics["train_loss"]  # it really ran in bf16
    assert abs(bf16.metrics["acc"] - fp32_run.metrics["acc"]) < 0.1 and bf16.metrics["asr"] > 0.8


def test_fp16_scales_gradients():
    fast = FastPath("cpu", precision="fp16")
    assert fast.scaler is not None and fast.dtype == torch.float16
    run = _backdoor(epochs=1, precision="fp16")
    assert run.history[-1]["precision_used"] == "fp16" and torch.isfinite(torch.tensor(run.metrics["train_loss"]))


def test_channels_last_changes_layout_not_results(fp32_run):
    model = FastPath("cpu", channels_last="on").prepare(torch.nn.Conv2d(3, 8, 3))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    run = _backdoor(channels_last="off")  # fp32_run used the default, channels_last
    assert run.history[-1]["channels_last_used"] == 0
    assert abs(run.metrics["acc"] - fp32_run.metrics["acc"]) <= 0.02
    assert run.metrics["train_loss"] == pytest.approx(fp32_run.metrics["train_loss"], rel=1e-2)


def test_compile_is_timed_apart_and_trains_like_eager():
    eager = _backdoor(epochs=2)
    compiled = _backdoor(epochs=2, compile=True)
    last = compiled.history[-1]
    assert last["compiled"] == 1 and last["compile_time_s"] > 0
    # the warm-up compile put the BN statistics back: the run matches eager up to kernel rounding
    assert compiled.metrics["train_loss"] == pytest.approx(eager.metrics["train_loss"], rel=1e-3)
    assert abs(compiled.metrics["acc"] - eager.metrics["acc"]) <= 0.02


def test_dhbe_reports_its_device_settings(artifact_root):
    cfg = DHBEConfig(backdoor=BackdoorConfig(epochs=3, batch_size=64), epochs=1, iters_per_epoch=2, batch_size=32,
                     generator_width=16, precision="bf16")
    run = run_local("dhbe", cfg, device="cpu", artifact_root=artifact_root, verbose=False)
    last = run.history[-1]
    assert last["precision_used"] == "bf16" and last["train_steps_per_s"] > 0


@pytest.mark.parametrize("field,value", [("precision", "fp8"), ("channels_last", "yes"), ("compile", "yes")])
def test_bad_speed_settings_are_rejected(field, value):
    with pytest.raises(ConfigError, match=field):
        BackdoorConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        DHBEConfig(**{field: value})
