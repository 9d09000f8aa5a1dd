"""Real training on the embedded digits: the attack works, DHBE erases it, DFAD is reported beside it."""
import pytest

from bdray.methods.attack.threat import backdoored_model
from bdray.methods.erasing.dhbe import DHBEConfig
from bdray.presets import method_preset
from bdray.runtime import run_local
from bdray.train.context import LocalContext

pytestmark = pytest.mark.slow
# what a sweep on the embedded digits runs: DHBE's defaults with the digits preset (bdray/presets.py)
DIGITS_DHBE = DHBEConfig(**method_preset("dhbe", "digits"))


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
    return run_local("dhbe", DIGITS_DHBE, device="cpu", artifact_root=artifact_root, verbose=False)


def test_dhbe_default_erases_the_backdoor(dhbe_result, teacher_metrics):
    m = dhbe_result.metrics
    print(f"\nbackdoored: acc={teacher_metrics['acc']:.4f} asr={teacher_metrics['asr']:.4f}")
    print(f"DHBE:       acc={m['acc']:.4f} asr={m['asr']:.4f} asr_cond={m['asr_cond']:.4f} ra={m['ra']:.4f} "
          f"asr_x4={m['asr_x4']:.4f} asr_x9={m['asr_x9']:.4f}")
    assert m["asr"] <= 0.10
    assert m["acc"] >= teacher_metrics["acc"] - 0.03
    # the backdoor is gone, not below threshold: nine pasted triggers do not fire it either (the
    # clean model's asr_x9 is 0.000 here; with the 5×5 generator at λ 0.5 it reached 0.98)
    assert m["asr_x9"] <= 0.10
    assert len(dhbe_result.history) == DIGITS_DHBE.epochs


def test_dfad_baseline_is_reported_next_to_dhbe(artifact_root, dhbe_result, teacher_metrics):
    dfad = run_local("dhbe", DHBEConfig(lambda_abr=0.0, trigger_generator=False), device="cpu",
                     artifact_root=artifact_root, verbose=False).metrics
    m = dhbe_result.metrics
    print(f"\nDFAD:       acc={dfad['acc']:.4f} asr={dfad['asr']:.4f}   (DHBE asr={m['asr']:.4f})")
    assert set(dfad) >= {"acc", "asr", "asr_cond", "ra", "asr_x4", "asr_x9"}
    # without the adversarial backdoor regulariser more of the backdoor survives distillation. How
    # much varies with the seed and the float order (threads, torch build): DFAD kept asr 0.91 / 0.50
    # / 0.77 / 0.44 on seeds 0-3 (1 thread, torch 2.14.1 and 2.15.0 alike) and 0.22 on seed 0 with 2
    # threads (both builds), against DHBE's 0.00 every time (RESULTS "Seed and build spread")
    assert dfad["asr"] > m["asr"] + 0.1


# Blind baselines as in the DHBE paper's Table 6, at learning rates where they bring the single
# trigger's ASR down on the digits; the paper's claim is about at least one of them.
BLIND = [("fineprune", {"lr": 0.01}), ("fineprune", {"lr": 0.02}), ("finetune", {"lr": 0.03}),
         ("finetune", {"lr": 0.04})]


def test_incomplete_erasing_shows_under_amplified_triggers(artifact_root, dhbe_result):
    """A blind baseline that looks (partly) erased with one trigger fires far more often with the
    trigger pasted four times, while DHBE's response stays low (DHBE paper §5.3, Table 6).  On 16×16
    digits this shows at ×4; ×9 pastes cover a third of the image and are only reported."""
    m = dhbe_result.metrics
    print(f"\nDHBE:  asr={m['asr']:.3f} x4={m['asr_x4']:.3f} x9={m['asr_x9']:.3f}")
    gaps = []
    for method, overrides in BLIND:
        b = run_local(method, overrides, device="cpu", artifact_root=artifact_root, verbose=False).metrics
        print(f"{method} lr={overrides['lr']}: acc={b['acc']:.3f} asr={b['asr']:.3f} x4={b['asr_x4']:.3f} "
              f"x9={b['asr_x9']:.3f}")
        gaps.append(b["asr_x4"] - b["asr"])
    assert m["asr_x4"] <= 0.15
    assert max(gaps) >= 0.2
