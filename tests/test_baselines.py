"""The clean-data erasing baselines, end to end on the embedded digits (in-process)."""
import pytest
import torch

from bdray.data import Split
from bdray.methods.erasing.clean_data import clean_subset
from bdray.metrics import ACTIVATION_NAMES, METRIC_NAMES
from bdray.runtime import run_local
from bdray.train.batches import repeated

pytestmark = pytest.mark.slow
FAST = {"epochs": 6, "samples_per_epoch": 256}


def run(method, artifact_root, **overrides):
    return run_local(method, {**FAST, **overrides}, device="cpu", artifact_root=artifact_root, verbose=False)


def test_clean_subset_is_a_seeded_fraction_duplicated_per_epoch():
    split = Split(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), torch.arange(100) % 10)
    a, b = clean_subset(split, 0.04, 1), clean_subset(split, 0.04, 1)
    assert len(a) == 4 and torch.equal(a.labels, b.labels)
    assert not torch.equal(clean_subset(split, 0.2, 1).labels, clean_subset(split, 0.2, 2).labels)
    batches = list(repeated(a, 50, 16, crop_padding=1, hflip=False)(torch.Generator().manual_seed(0)))
    assert [len(b.y) for b in batches] == [16, 16, 16, 2]
    seen = torch.cat([b.idx for b in batches])
    assert len(seen) == 50 and set(seen.tolist()) == {0, 1, 2, 3}
    assert batches[0].x.dtype == torch.float32 and batches[0].x.shape[1:] == (1, 4, 4)


@pytest.mark.parametrize("method", ["finetune", "fineprune", "nad", "neural_cleanse"])
def test_baseline_runs_end_to_end_and_reports_every_metric(method, artifact_root):
    result = run(method, artifact_root)
    assert set(METRIC_NAMES) <= set(result.metrics) and set(ACTIVATION_NAMES) <= set(result.metrics)
    assert len(result.history) == FAST["epochs"]
    assert 0.0 <= result.metrics["acc"] <= 1.0 and result.metrics["teacher_asr"] >= 0.95
    assert result.metrics["clean_samples"] == round(0.04 * 1347)
    m = result.metrics  # BackdoorBench's DER against the backdoored model
    expected = (max(0.0, m["teacher_asr"] - m["asr"]) - max(0.0, m["teacher_acc"] - m["acc"]) + 1) / 2
    assert m["der"] == pytest.approx(expected)
    if method == "fineprune":
        assert 0.0 < result.metrics["pruned_fraction"] < 0.9
    if method == "neural_cleanse":
        assert result.metrics["nc_trigger_success"] > 0.5   # the recovered trigger does hit the target


def test_finetuning_trades_accuracy_for_asr(artifact_root):
    gentle = run("finetune", artifact_root, lr=0.005).metrics
    harsh = run("finetune", artifact_root, lr=0.1).metrics
    print(f"\nfinetune lr=0.005: acc={gentle['acc']:.3f} asr={gentle['asr']:.3f}; "
          f"lr=0.1: acc={harsh['acc']:.3f} asr={harsh['asr']:.3f}")
    assert harsh["asr"] < gentle["asr"] - 0.2
    assert harsh["acc"] < gentle["acc"]


def test_nad_attention_loss_is_nonzero_and_decreasing(artifact_root):
    history = run("nad", artifact_root).history
    losses = [row["loss_attention"] for row in history]
    assert all(loss > 0 for loss in losses)
    assert losses[-1] < losses[0]


def test_fst_shifts_the_head_away_and_removes_the_backdoor(artifact_root):
    """FST re-initialises the head and pushes it away from the compromised one (⟨w, w_ori⟩ < 0 at
    the end, ‖w‖ = ‖w_ori‖).  With 10 % of the digits clean (135 images) the backdoor goes at a small
    accuracy cost; at the paper's 2 % (27 images here) accuracy falls too far (benchmarks/RESULTS.md)."""
    from bdray.methods.attack.threat import backdoored_model
    from bdray.methods.attack.backdoor import BackdoorConfig
    from bdray.train.context import LocalContext

    result = run_local("fst", {"clean_fraction": 0.1}, device="cpu", artifact_root=artifact_root, verbose=False)
    m = result.metrics
    assert m["teacher_asr"] >= 0.95 and m["asr"] <= 0.10 and m["acc"] >= m["teacher_acc"] - 0.06, m
    assert m["head_inner_product"] < 0
    original, _ = backdoored_model(BackdoorConfig(), LocalContext("cpu", artifact_root=artifact_root, verbose=False))
    w, w0 = result.model.backbone.linear.weight, original.backbone.linear.weight
    assert float(w.norm()) == pytest.approx(float(w0.norm()), rel=1e-4) and float((w * w0).sum()) < 0
