"""The same loop under Ray Train's TorchTrainer: 2 CPU workers with DDP, checkpoints, resume."""
import pytest

from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.runtime.ray_train import run_ray_train

pytestmark = pytest.mark.ray


def test_ddp_run_checkpoints_and_a_rerun_with_the_same_name_resumes(ray_local, artifact_root, tmp_path):
    first = run_ray_train("backdoor", BackdoorConfig(epochs=2, batch_size=128), artifact_root=artifact_root,
                          storage_path=str(tmp_path), name="ddp2", num_workers=2, verbose=False)
    assert first.error is None and first.checkpoint is not None
    assert first.metrics["epoch"] == 2 and 0.0 <= first.metrics["acc"] <= 1.0
    assert first.metrics["hardware"].startswith("cpu") and first.metrics["resumed_from_epoch"] == 0
    second = run_ray_train("backdoor", BackdoorConfig(epochs=3, batch_size=128), artifact_root=artifact_root,
                           storage_path=str(tmp_path), name="ddp2", num_workers=2, verbose=False)
    # only the missing epoch ran: the run picked up its checkpoint
    assert second.metrics["epoch"] == 3 and second.metrics["resumed_from_epoch"] == 2


def test_dhbe_runs_with_two_ddp_workers(ray_local, artifact_root, tmp_path):
    import math

    from bdray.methods.erasing.dhbe import DHBEConfig

    cfg = DHBEConfig(backdoor=BackdoorConfig(epochs=3, batch_size=64), epochs=1, iters_per_epoch=2, batch_size=16,
                     generator_width=16)
    result = run_ray_train("dhbe", cfg, artifact_root=artifact_root, storage_path=str(tmp_path), name="dhbe_ddp",
                           num_workers=2, verbose=False)
    assert result.error is None and result.metrics["epoch"] == 1
    assert math.isfinite(result.metrics["loss_distill"]) and math.isfinite(result.metrics["loss_abr"])


def test_debias_adversarial_runs_with_two_ddp_workers(ray_local, artifact_root, tmp_path):
    """The adversary head and gradient reversal train inside DDP (one wrapped module)."""
    from bdray.methods.fairness.debias import DebiasConfig

    result = run_ray_train("debias", DebiasConfig(strategy="adversarial", epochs=1), artifact_root=artifact_root,
                           storage_path=str(tmp_path), name="debias_ddp", num_workers=2, verbose=False)
    assert result.error is None and result.metrics["epoch"] == 1
    assert 0.0 <= result.metrics["eacc"] <= 1.0 and result.metrics["train_samples"] == 1347
