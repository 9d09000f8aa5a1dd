"""Real training on the embedded digits: the attack works, DHBE erases it, DFAD is reported beside it."""
import pytest

from bdray.artifacts import backdoored_model
from bdray.methods.dhbe import DHBEConfig
from bdray.runtime import LocalContext, run_local

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def teacher_metrics(artifact_root):
    _, metrics = backdoored_model(DHBEConfig().backdoor, LocalContext("cpu", artifact_root=artifact_root,
                                                                      verbose=False))
    return metrics


def test_badnets_backdoor_is_accurate_and_effective(teacher_metrics):
    assert teacher_metrics["acc"] >= 0.93
    assert teacher_metrics["asr"] >= 0.95


@pytest.fixture(scope="module")
def dhbe_result(artifact_root, teacher_metrics):
    return run_local("dhbe", DHBEConfig(), device="cpu", artifact_root=artifact_root, verbose=False)


def test_dhbe_default_erases_the_backdoor(dhbe_result, teacher_metrics):
    m = dhbe_result.metrics
    print(f"\nbackdoored: acc={teacher_metrics['acc']:.4f} asr={teacher_metrics['asr']:.4f}")
    print(f"DHBE:       acc={m['acc']:.4f} asr={m['asr']:.4f} asr_cond={m['asr_cond']:.4f} ra={m['ra']:.4f} "
          f"asr_x4={m['asr_x4']:.4f} asr_x9={m['asr_x9']:.4f}")
    assert m["asr"] <= 0.10
    assert m["acc"] >= teacher_metrics["acc"] - 0.03
    assert len(dhbe_result.history) == DHBEConfig().epochs


def test_dfad_baseline_is_reported_next_to_dhbe(artifact_root, dhbe_result, teacher_metrics):
    dfad = run_local("dhbe", DHBEConfig(lambda_abr=0.0, trigger_generator=False), device="cpu",
                     artifact_root=artifact_root, verbose=False).metrics
    m = dhbe_result.metrics
    print(f"\nDFAD:       acc={dfad['acc']:.4f} asr={dfad['asr']:.4f}   (DHBE asr={m['asr']:.4f})")
    assert set(dfad) >= {"acc", "asr", "asr_cond", "ra", "asr_x4", "asr_x9"}
    # without the adversarial backdoor regulariser the backdoor survives distillation
    assert dfad["asr"] > m["asr"] + 0.3
