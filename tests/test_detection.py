"""Poisoned-sample detectors on the embedded digits, judged against the recorded poison indices:
Spectral Signatures and Activation Clustering find BadNets poison in the regime their papers assume
(the poison a small share of its class), STRIP rejects triggered inputs at a low false rejection
rate, and a detector's flagged set feeds a retrain that drops the backdoor. The metrics themselves
on hand-made cases."""
import math

import pytest
import torch

from bdray.config import ConfigError
from bdray.methods import get_method
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.detection.metrics import auroc, detection_metrics
from bdray.runtime import run_local

# 1 % of the training set relabelled to class 0: about 9 % of that class (the papers poison 5-10 %
# of the target class); ASR 1.0 on the digits
SMALL_POISON = BackdoorConfig(attack="badnets", poison_rate=0.01).to_dict()


def test_auroc_and_rates_on_known_cases():
    poisoned = torch.tensor([True, True, False, False, False])
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3]), poisoned) == 1.0
    assert auroc(torch.tensor([0.0, 0.1, 0.5, 0.6, 0.7]), poisoned) == 0.0
    assert auroc(torch.ones(5), poisoned) == 0.5  # ties count one half
    assert auroc(torch.tensor([0.9, 0.2, 0.1, 0.5, 0.3]), poisoned) == pytest.approx(4 / 6)
    assert math.isnan(auroc(torch.ones(3), torch.zeros(3, dtype=torch.bool)))
    m = detection_metrics(torch.tensor([True, False, True, False, False]), poisoned)
    assert (m["detection_tpr"], m["detection_fpr"], m["detection_precision"]) == (0.5, 1 / 3, 0.5)
    assert m["detection_recall"] == m["detection_tpr"] and m["flagged_samples"] == 2


@pytest.mark.parametrize("method", ["spectral_signatures", "activation_clustering"])
def test_latent_detectors_find_a_small_badnets_poison(artifact_root, method):
    m = run_local(method, {"backdoor": SMALL_POISON}, artifact_root=artifact_root, verbose=False).metrics
    assert m["undefended_asr"] > 0.9  # there is a backdoor to find
    assert m["detection_tpr"] >= 0.8 and m["detection_auroc"] >= 0.9, m
    if method == "activation_clustering":
        assert m["detection_fpr"] <= 0.15
    else:  # the paper's rule flags 1.5 ε of every class (ε the defender's bound): the FPR is its cost
        assert m["epsilon_used"] == 0.1 and m["detection_fpr"] <= 0.2


def test_strip_rejects_triggered_inputs_at_low_false_rejection(artifact_root):
    m = run_local("strip", {"backdoor": SMALL_POISON, "num_perturbations": 16}, artifact_root=artifact_root,
                  verbose=False).metrics
    # test time (the input filter): triggered inputs rejected, clean ones kept near the preset 1 %
    assert m["strip_test_tpr"] >= 0.9 and m["strip_test_fpr"] <= 0.1 and m["strip_test_auroc"] >= 0.95
    # training set: the poisoned samples flagged
    assert m["detection_tpr"] >= 0.9 and m["detection_fpr"] <= 0.1


def test_retraining_without_the_flagged_samples_removes_the_backdoor(artifact_root):
    result = run_local("spectral_signatures", {"backdoor": SMALL_POISON, "retrain_epochs": 20},
                       artifact_root=artifact_root, verbose=False)
    m = result.metrics
    assert m["undefended_asr"] > 0.9 and m["asr"] <= 0.1 and m["acc"] >= m["undefended_acc"] - 0.05
    assert len(result.history) == 20 and all("detection_tpr" in row for row in result.history)


def test_detector_configs_name_the_bad_field():
    with pytest.raises(ConfigError, match="epsilon"):
        get_method("spectral_signatures").make_config({"epsilon": 1.5})
    with pytest.raises(ConfigError, match="size_threshold"):
        get_method("activation_clustering").make_config({"size_threshold": 0.7})
    with pytest.raises(ConfigError, match="frr"):
        get_method("strip").make_config({"frr": 0.0})
    with pytest.raises(ConfigError, match="retrain_epochs"):
        get_method("strip").make_config({"retrain_epochs": -1})
