"""ABL, PT and CBD: their pieces exactly, then real training on the embedded digits (BadNets 10 %)."""
import math

import pytest
import torch

from bdray.methods.attack.threat import backdoored_model
from bdray.config import ConfigError
from bdray.methods.training_time.abl import ABLConfig
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.training_time.cbd import CBDConfig, PairDiscriminator, jsd_mi_estimate, normalise_weights, wasserstein_mi_estimate
from bdray.methods.attack.threat import poisoned_set
from bdray.methods.training_time.poisoned import complement, isolate_lowest_loss, isolation_quality
from bdray.methods.training_time.pt import PTConfig, freeze_first_layers, parameterised_layers
from bdray.models import create_model
from bdray.runtime import run_local
from bdray.train.context import LocalContext


def test_isolation_takes_the_lowest_losses_and_is_judged_against_the_poison_indices():
    losses = torch.tensor([0.9, 0.01, 0.5, 0.02, 0.03, 2.0, 0.04, 0.8, 0.7, 0.6])
    isolated = isolate_lowest_loss(losses, 0.3)
    assert isolated.tolist() == [1, 3, 4]
    q = isolation_quality(isolated, torch.tensor([1, 3, 6, 9]))
    assert q["isolation_precision"] == pytest.approx(2 / 3)
    assert q["isolation_recall"] == pytest.approx(2 / 4)
    assert q["isolated_samples"] == 3
    assert complement(isolated, 10).tolist() == [0, 2, 5, 6, 7, 8, 9]
    assert isolate_lowest_loss(losses, 0.01).tolist() == [1]  # at least one sample
    assert math.isnan(isolation_quality(isolated, torch.tensor([], dtype=torch.long))["isolation_recall"])


def test_freeze_first_layers_counts_parameterised_layers():
    model = create_model("small_cnn", (1, 16, 16), 10, (0.5,), (0.25,))
    layers = parameterised_layers(model)
    assert len(layers) == 9  # 4 conv + 4 batch-norm + linear
    assert freeze_first_layers(model, 0.3) == 3
    frozen = [all(not p.requires_grad for p in m.parameters(recurse=False)) for m in layers]
    assert frozen == [True, True, True] + [False] * 6
    assert freeze_first_layers(create_model("small_cnn", (1, 16, 16), 10, (0.5,), (0.25,)), 0.0) == 0


def test_cbd_weights_rescale_to_mean_one_per_batch_or_per_class():
    w = torch.tensor([0.1, 0.3, 0.001, 0.5])
    y = torch.tensor([0, 0, 0, 1])
    assert normalise_weights(w, y, "batch").mean().item() == pytest.approx(1.0)
    per_class = normalise_weights(w, y, "class")
    assert per_class[:3].mean().item() == pytest.approx(1.0)
    assert per_class[3].item() == pytest.approx(1.0)


def test_wasserstein_critic_is_kept_1_lipschitz_and_sees_dependence():
    torch.manual_seed(0)
    disc = PairDiscriminator(4, 4, 8, lipschitz=True)
    opt = torch.optim.Adam(disc.parameters(), lr=0.2)
    z = torch.randn(256, 4)
    perm = torch.roll(torch.arange(256), 1)
    for _ in range(200):
        loss = -wasserstein_mi_estimate(disc, z, z, perm)
        opt.zero_grad()
        loss.backward()
        opt.step()
        disc.constrain()
    for layer in disc.net:
        if isinstance(layer, torch.nn.Linear):
            assert torch.linalg.matrix_norm(layer.weight, ord=2) <= 1.0 + 1e-4
    disc.eval()
    with torch.no_grad():  # dependent pairs score apart from shuffled ones; independent ones do not
        dependent = wasserstein_mi_estimate(disc, z, z, perm)
        independent = wasserstein_mi_estimate(disc, z, torch.randn(256, 4), perm)
    assert dependent > 0.3 and abs(independent) < 0.5 * dependent


def test_jsd_estimate_is_higher_for_dependent_features():
    torch.manual_seed(0)
    z = torch.randn(256, 4)
    disc = lambda a, b: -(a - b).pow(2).sum(1) + 2.0  # noqa: E731  scores matching pairs high
    perm = torch.roll(torch.arange(256), 1)
    assert jsd_mi_estimate(disc, z, z, perm) > jsd_mi_estimate(disc, z, torch.randn(256, 4), perm) + 0.5


@pytest.mark.parametrize("cls, field, value", [
    (ABLConfig, "isolation_ratio", 0.0), (ABLConfig, "isolation_ratio", 1.2), (ABLConfig, "gamma", -0.5),
    (ABLConfig, "unlearn_lr", 0.0), (PTConfig, "freeze_fraction", 1.0), (PTConfig, "partial_init", "random"),
    (PTConfig, "clean_lr", -1e-3), (CBDConfig, "mi_weight", -0.1), (CBDConfig, "weight_normalization", "none"),
    (CBDConfig, "fb_epochs", 0),
])
def test_bad_defense_configs_name_the_field(cls, field, value):
    with pytest.raises(ConfigError) as info:
        cls.from_dict({field: value})
    assert field in str(info.value)


def test_poisoned_data_matches_the_attack_artifacts_training_split(artifact_root):
    ctx = LocalContext("cpu", artifact_root=artifact_root, verbose=False)
    a = poisoned_set(BackdoorConfig(), ctx)
    b = poisoned_set(BackdoorConfig(), ctx)
    assert torch.equal(a.poison_indices, b.poison_indices)
    assert len(a.poison_indices) == round(0.1 * len(a.train))
    assert bool((a.train.labels[a.poison_indices] == 0).all())
    c = poisoned_set(BackdoorConfig(seed=1), ctx)
    assert not torch.equal(a.poison_indices, c.poison_indices)


# --- science: BadNets at 10 % on the embedded digits ------------------------------------------

@pytest.fixture(scope="module")
def undefended(artifact_root):
    _, metrics = backdoored_model(BackdoorConfig(), LocalContext("cpu", artifact_root=artifact_root, verbose=False))
    assert metrics["asr"] >= 0.95
    return metrics


def _run(method, cfg, artifact_root):
    return run_local(method, cfg, device="cpu", artifact_root=artifact_root, verbose=False).metrics


def test_abl_removes_the_backdoor_and_isolates_poison(artifact_root, undefended):
    # the paper's isolation (1 %, γ = 0.5, lr 0.1) on three seeds. Per seed the isolation is far above
    # chance (the poison share, 0.1) and the backdoor mostly goes; the paper's sizes (precision ≥ 0.8,
    # asr ≤ 0.10) are asserted on the median seed: over seeds 0-5 (1 thread) and 0-3 (2 threads;
    # torch 2.14.1 and 2.15.0 alike) precision was 1.0 on 8 of 10 runs, 0.69 and 0.62 on the others (asr 0.32 and
    # 0.05 there; RESULTS "Seed and build spread"). Its accuracy cost is real (0.75-0.94 against
    # 0.99, from the unlearning: README) and is what the claims harness reports.
    precisions, asrs = [], []
    for seed in (0, 1, 2):
        cfg = ABLConfig(backdoor=BackdoorConfig(seed=seed), seed=seed)
        m = _run("abl", cfg, artifact_root)
        print(f"\nABL seed {seed}: acc={m['acc']:.4f} asr={m['asr']:.4f} precision={m['isolation_precision']:.3f} "
              f"recall={m['isolation_recall']:.3f} unlearning epochs={m['unlearn_epochs_run']} "
              f"isolated fit={m['isolated_fit']:.2f}")
        assert cfg.isolation_ratio <= cfg.backdoor.poison_rate
        assert m["isolation_precision"] >= 0.5
        # on the detectors' footing: TPR is the recall; the lowest-loss ranking separates the poison
        assert m["isolation_tpr"] == m["isolation_recall"] and m["isolation_fpr"] <= 0.05
        assert m["isolation_auroc"] >= 0.85
        assert m["asr"] <= 0.5 * undefended["asr"]
        assert m["acc"] >= 0.7 and m["collapsed"] == 0
        assert 1 <= m["unlearn_epochs_run"] <= cfg.unlearn_epochs
        precisions.append(m["isolation_precision"])
        asrs.append(m["asr"])
    assert sorted(precisions)[1] >= 0.8
    assert sorted(asrs)[1] <= 0.10


def test_pt_removes_the_backdoor_and_reports_both_isolations(artifact_root, undefended):
    cfg = PTConfig()
    m = _run("pt", cfg, artifact_root)
    print(f"\nPT: acc={m['acc']:.4f} asr={m['asr']:.4f} isolation precision with M'={m['isolation_precision']:.3f} "
          f"with M_s={m['base_isolation_precision']:.3f}")
    assert cfg.isolation_ratio <= cfg.backdoor.poison_rate
    assert m["undefended_acc"] == pytest.approx(undefended["acc"])
    for key in ("isolation_precision", "isolation_recall", "base_isolation_precision", "base_isolation_recall"):
        assert 0.0 <= m[key] <= 1.0
    assert m["isolation_precision"] >= 0.8
    # ranking by M′'s loss separates the poison at least as well as ranking by M_s's (both AUROCs)
    assert m["isolation_auroc"] >= 0.9 and m["isolation_auroc"] >= m["base_isolation_auroc"] - 0.02
    assert m["asr"] <= 0.10
    assert m["acc"] >= undefended["acc"] - 0.05


def test_cbd_removes_the_backdoor_and_down_weights_poison(artifact_root, undefended):
    # three seeds (attack and defense), the authors' weighting (rescaled per batch) and estimator.
    # CBD rests on f_B learning the backdoor in its few epochs (5 here, as in the paper; ~115 steps
    # on these 1,437 images against ~3,900 on CIFAR-10). Where it does, f_C's loss usually gives the
    # poisoned samples a small fraction of the clean samples' weight and the backdoor goes. f_B fell
    # short on 3 of 10 runs (seeds 0-5 with 1 thread, 0-3 with 2 threads, torch 2.14.1 and 2.15.0
    # alike: f_B asr 0.50-0.85, then the weights do not separate and asr stays 1.0); on the AMD EPYC
    # machine of 2026-12-04 (torch 2.14.1) f_B learned it on seeds 0-3 and the weights separated
    # fully on 0 and 2 (AUROC 1.000 / 0.989, asr 0.00), partly on 1 (AUROC 0.842, asr 0.163) and not
    # on 3 (AUROC 0.131, asr 1.0): benchmarks/RESULTS.md. So on at least 2 of the 3 seeds f_B must
    # learn the backdoor and CBD must remove it with the poison weighted down. CBD's accuracy here is
    # 0.45-0.87 (f_B fits the target class's clean images as well as the poisoned ones, and batch
    # rescaling starves whole classes: README); the claims harness reports the per-seed claim failing.
    removed = 0
    for seed in (0, 1, 2):
        cfg = CBDConfig(backdoor=BackdoorConfig(seed=seed), seed=seed)
        m = _run("cbd", cfg, artifact_root)
        print(f"\nCBD seed {seed}: acc={m['acc']:.4f} asr={m['asr']:.4f} f_B asr={m['fb_asr']:.3f} "
              f"mean weight poisoned={m['mean_weight_poisoned']:.3f} clean={m['mean_weight_clean']:.3f}")
        print(f"CBD seed {seed}: weights as scores: AUROC {m['weight_auroc']:.3f}, TPR {m['weight_tpr']:.3f}, "
              f"FPR {m['weight_fpr']:.3f}")
        assert m["acc"] >= 0.3 and m["collapsed"] == 0
        removed += bool(m["fb_asr"] >= 0.9  # f_B learned the backdoor ...
                        and m["mean_weight_poisoned"] < 0.2 * m["mean_weight_clean"]  # f_C's loss ignores the poison
                        and m["weight_auroc"] >= 0.9  # the weights, read as a detector, rank poison low (chance 0.5)
                        and m["asr"] <= 0.10 < undefended["asr"])
    assert removed >= 2

