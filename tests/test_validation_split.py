"""The validation split held out of the training data: disjoint, stratified and the same for every
method and seed; metrics reported there as ``val_*``; sweeps choose on it by default; hashes of
configs without one unchanged; the best configurations and the report page built from it."""
import pandas as pd
import pytest
import torch

from analysis.page import markdown_to_html
from analysis.summary import best_configurations, non_dominated, summary_lines
from bdray.config import ConfigError
from bdray.data import load_dataset
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.finetune import FinetuneConfig
from bdray.sweep import Sweep
from sweeps import dhbe_lr


def _keys(split):
    return {bytes(img.numpy().tobytes()) for img in split.images}


def test_validation_split_is_held_out_stratified_and_fixed():
    full = load_dataset("digits")
    data = load_dataset("digits", val_fraction=0.1)
    assert len(data.train) + len(data.val) == len(full.train) and len(data.test) == len(full.test)
    assert not (_keys(data.train) & _keys(data.val))  # no image in both
    assert _keys(data.train) | _keys(data.val) == _keys(full.train)
    per_class = torch.bincount(data.val.labels, minlength=10).float() / torch.bincount(full.train.labels, minlength=10)
    assert per_class.min() > 0.07 and per_class.max() < 0.13  # every class keeps about its 10 %
    again = load_dataset("digits", val_fraction=0.1)
    assert torch.equal(again.val.images, data.val.images)  # fixed seed: the same images every time
    assert load_dataset("digits", val_fraction=0.0).val is None
    assert data.mean == full.mean  # input scaling does not depend on the fraction


def test_val_fraction_is_validated_and_keeps_old_hashes():
    with pytest.raises(ConfigError, match="val_fraction"):
        BackdoorConfig(val_fraction=0.7)
    plain = BackdoorConfig()
    assert "val_fraction" not in plain.identity() and "val_fraction" in plain.to_dict()
    held = BackdoorConfig(val_fraction=0.1)
    assert held.identity()["val_fraction"] == 0.1 and held.digest() != plain.digest()
    # a defense's hash leaves its backdoor's default out too: its earlier runs keep their digests
    assert "val_fraction" not in FinetuneConfig(backdoor=plain).identity()["backdoor"]


def test_sweeps_choose_on_validation_by_default_and_say_so():
    held = Sweep(name="v", method="finetune", base_config=FinetuneConfig(backdoor=BackdoorConfig(val_fraction=0.1)),
                 search_space={})
    assert held.objectives == (("val_acc", "max"), ("val_asr", "min")) and held.selected_on == "validation"
    assert "chosen on the validation split" in held.describe()
    plain = Sweep(name="t", method="finetune", base_config=FinetuneConfig(), search_space={})
    assert plain.objectives == (("acc", "max"), ("asr", "min")) and plain.selected_on == "test"
    assert "no validation split" in plain.describe()
    bad = Sweep(name="b", method="finetune", base_config=FinetuneConfig(), search_space={},
                objectives=(("val_acc", "max"),))
    with pytest.raises(ConfigError, match=r"objectives\[val_acc\].*val_fraction"):
        bad.validate()
    # the scripts hold 10 % out unless told otherwise
    (sweep,) = dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--smoke-test"]))
    assert sweep.base_config.backdoor.val_fraction == 0.1 and sweep.selected_on == "validation"
    (sweep,) = dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--smoke-test", "--val-fraction", "0"]))
    assert sweep.selected_on == "test"


def test_best_configurations_use_the_objectives_not_the_test_split():
    trials = pd.DataFrame({
        "trial_id": list("abcd"), "method": "dhbe", "status": "TERMINATED", "config_id": ["1", "2", "3", "3"],
        "student_lr": [0.1, 0.2, 0.3, 0.3],
        # on the test split config 1 looks best; on the validation split config 3 (mean of its two seeds)
        "acc": [0.99, 0.80, 0.70, 0.72], "asr": [0.0, 0.0, 0.1, 0.1],
        "val_acc": [0.80, 0.85, 0.90, 0.94], "val_asr": [0.0, 0.2, 0.05, 0.05], "collapsed": 0})
    best = best_configurations(trials, (("val_acc", "max"),))
    assert list(best["config_id"]) == ["3"] and best["val_acc"].iloc[0] == pytest.approx(0.92)
    front = best_configurations(trials, (("val_acc", "max"), ("val_asr", "min")))
    assert set(front["config_id"]) == {"1", "3"}  # 2 is dominated by 3 on the validation split
    assert list(non_dominated(pd.DataFrame({"a": [1.0, 2.0, 2.0], "b": [1.0, 1.0, 0.5]}), ["max", "min"])) == [
        False, False, True]
    lines = summary_lines(trials, (("val_acc", "max"),), ["student_lr"])
    assert "chosen on the validation split" in lines[0] and "student_lr=0.3" in lines[1] and "over 2 seeds" in lines[1]
    collapsed = trials.assign(collapsed=[0, 0, 1, 1])  # a collapsed configuration is never "best"
    assert list(best_configurations(collapsed, (("val_acc", "max"),))["config_id"]) == ["2"]


def test_markdown_of_the_reports_renders_as_html():
    page = markdown_to_html("# Title\n\nSome `code` and **bold**.\n\n- one\n- two\n\n| a | b |\n|---|---|\n"
                            "| 1 | x\\|y |\n")
    assert "<h2>Title</h2>" in page and "<code>code</code>" in page and "<b>bold</b>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page
    assert "<th>a</th><th>b</th>" in page and "<td>x|y</td>" in page
