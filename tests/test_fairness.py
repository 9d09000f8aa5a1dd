"""Fairness metrics (methods.md §0), cross-checked against fairlearn, and DBA's Eq. 2 proportions."""
import math

import numpy as np
import pytest
import torch
from fairlearn.metrics import MetricFrame, equalized_odds_difference, true_negative_rate, true_positive_rate

from bdray.fairness import cell_counts, fairness_metrics, select_for_trigger, trigger_proportions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_rates_and_gaps_match_fairlearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    a = rng.integers(0, 2, 500)
    pred = np.where(rng.random(500) < 0.7, y, 1 - y)  # 70 % right, group-dependent by chance
    ours = fairness_metrics(torch.tensor(pred), torch.tensor(y), torch.tensor(a))
    frame = MetricFrame(metrics={"tpr": true_positive_rate, "tnr": true_negative_rate}, y_true=y, y_pred=pred,
                        sensitive_features=a)
    for g in (0, 1):
        assert ours[f"tpr_a{g}"] == pytest.approx(frame.by_group.loc[g, "tpr"])
        assert ours[f"tnr_a{g}"] == pytest.approx(frame.by_group.loc[g, "tnr"])
    # fairlearn's equalized-odds difference with agg="mean" is the paper's mean form, with the FPR gap
    # (= the TNR gap) in place of the TNR gap
    assert ours["odds"] == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=a, agg="mean"))
    assert ours["opp"] == pytest.approx(abs(frame.by_group.loc[0, "tpr"] - frame.by_group.loc[1, "tpr"]))
    assert ours["eacc"] == pytest.approx(frame.by_group.to_numpy().mean())
    assert ours["acc"] == pytest.approx((pred == y).mean())
    assert ours["collapsed"] == 0.0


def test_collapsed_predictions_leave_opp_and_odds_empty():
    y = torch.tensor([0, 1, 0, 1])
    a = torch.tensor([0, 0, 1, 1])
    m = fairness_metrics(torch.ones(4, dtype=torch.long), y, a)
    assert m["collapsed"] == 1.0 and math.isnan(m["opp"]) and math.isnan(m["odds"])
    assert m["eacc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="binary"):
        fairness_metrics(torch.tensor([0, 2]), torch.tensor([0, 1]), torch.tensor([0, 1]))


def test_trigger_proportions_follow_eq2_exactly():
    # A=0: 80 with Y=1, 20 with Y=0; A=1: 10 with Y=1, 40 with Y=0
    y = torch.tensor([1] * 80 + [0] * 20 + [1] * 10 + [0] * 40)
    a = torch.tensor([0] * 100 + [1] * 50)
    assert cell_counts(y, a).tolist() == [[20, 80], [40, 10]]
    props = trigger_proportions(y, a)
    assert props[0, 1].item() == pytest.approx((80 - 20) / 80)
    assert props[1, 0].item() == pytest.approx((40 - 10) / 40)
    assert props[0, 0].item() == 0 and props[1, 1].item() == 0  # minority cells keep every sample
    assert trigger_proportions(y, a, alpha=2.0)[0, 1].item() == 1.0  # α scales, capped at 1
    chosen = select_for_trigger(y, a, alpha=1.0, seed=0)
    assert len(chosen) == 60 + 30
    assert bool(((a[chosen] == 0) & (y[chosen] == 1)).sum() == 60)
    # after pseudo-deletion every bias group is balanced in Y
    kept = torch.ones(150, dtype=torch.bool)
    kept[chosen] = False
    assert cell_counts(y[kept], a[kept]).tolist() == [[20, 20], [10, 10]]


# --- the embedded biased digits --------------------------------------------------------------

def test_biased_digits_correlate_a_with_y_in_train_only():
    from bdray.data.attributes import load_attribute_dataset

    ds = load_attribute_dataset("digits_biased", target="ge5", bias_strength=0.9)
    assert ds.image_shape == (3, 16, 16)
    tr, te = ds.train, ds.test
    for value in (0, 1):
        n = int((tr.y == value).sum())
        assert int(((tr.y == value) & (tr.a == value)).sum()) == round(0.9 * n)
        m = int((te.y == value).sum())
        assert abs(int(((te.y == value) & (te.a == 1)).sum()) - m / 2) <= 0.5  # test: A independent of Y
    # A is the stroke colour: orange strokes are red-heavy, azure ones blue-heavy
    red, blue = tr.images[:, 0].float().sum((1, 2)), tr.images[:, 2].float().sum((1, 2))
    assert bool(((red > blue) == (tr.a == 1)).all())
    assert load_attribute_dataset("digits_biased", target="even").train.y.float().mean() == pytest.approx(0.5, abs=0.05)


def test_biased_digits_reject_bad_arguments():
    from bdray.config import ConfigError
    from bdray.data.attributes import load_attribute_dataset

    with pytest.raises(ConfigError, match="target"):
        load_attribute_dataset("digits_biased", target="odd_shape")
    with pytest.raises(ConfigError, match="bias_strength"):
        load_attribute_dataset("digits_biased", bias_strength=1.5)
    with pytest.raises(ConfigError, match="dataset"):
        load_attribute_dataset("celebb")
