import math

import pytest
import torch

from bdray.metrics import (accuracy, defense_effectiveness_rating, attack_success_rate, backdoor_metrics, conditional_asr,
                           robust_accuracy)

# 6 test images; target class 0.  Images 0 and 1 are of the target class.
LABELS = torch.tensor([0, 0, 1, 2, 3, 4])
CLEAN = torch.tensor([0, 1, 1, 2, 0, 4])       # wrong on images 1 and 4
TRIGGERED = torch.tensor([0, 0, 0, 2, 0, 1])   # non-target images 2..5 -> 0, 2, 0, 1


def test_acc_counts_the_whole_clean_test_set():
    assert accuracy(CLEAN, LABELS) == pytest.approx(4 / 6)


def test_asr_over_non_target_images():
    # non-target: images 2,3,4,5 ; predicted target on 2 and 4
    assert attack_success_rate(TRIGGERED, LABELS, 0) == pytest.approx(2 / 4)


def test_asr_cond_only_over_correctly_classified_clean_images():
    # non-target and correct when clean: images 2, 3, 5 ; triggered -> target only on 2
    assert conditional_asr(CLEAN, TRIGGERED, LABELS, 0) == pytest.approx(1 / 3)


def test_ra_is_true_label_under_trigger():
    # non-target images 2..5 triggered preds 0, 2, 0, 1 vs labels 1, 2, 3, 4 -> only image 3
    assert robust_accuracy(TRIGGERED, LABELS, 0) == pytest.approx(1 / 4)


def test_backdoor_metrics_bundle_and_empty_cases():
    m = backdoor_metrics(CLEAN, TRIGGERED, LABELS, 0)
    assert set(m) == {"acc", "asr", "asr_cond", "ra", "collapsed", "pred_majority_share"}
    only_target = torch.zeros(3, dtype=torch.long)
    assert math.isnan(attack_success_rate(only_target, only_target, 0))


def test_a_model_predicting_one_class_is_flagged_collapsed():
    import torch

    from bdray.metrics import backdoor_metrics

    labels = torch.arange(100) % 10
    one_class = backdoor_metrics(torch.full((100,), 3), torch.full((100,), 3), labels, 0)
    assert one_class["collapsed"] == 1.0 and one_class["pred_majority_share"] == 1.0
    assert one_class["asr"] == 0.0  # a perfect-looking "defense"
    healthy = backdoor_metrics(labels.clone(), labels.clone(), labels, 0)
    assert healthy["collapsed"] == 0.0 and healthy["pred_majority_share"] == 0.1


def test_der_rewards_removed_asr_and_charges_lost_accuracy():
    assert defense_effectiveness_rating(0.9, 0.0, 0.9, 1.0) == 1.0      # backdoor gone, no cost
    assert defense_effectiveness_rating(0.9, 1.0, 0.9, 1.0) == 0.5      # nothing changed
    assert defense_effectiveness_rating(0.8, 0.0, 0.9, 1.0) == pytest.approx(0.95)
    assert defense_effectiveness_rating(0.95, 1.0, 0.9, 0.9) == 0.5     # gains are not rewarded
    assert defense_effectiveness_rating(0.1, 1.0, 0.9, 1.0) == pytest.approx(0.1)
