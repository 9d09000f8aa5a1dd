"""Every config field is checked before any Ray work: a table of bad configs across methods and
sweeps, each error naming the field, the value and what is allowed."""
import pytest

from bdray.config import ConfigError


def _sweep(**changes):
    from ray import tune

    from bdray.methods.attack.backdoor import BackdoorConfig
    from bdray.sweep import Sweep

    values = dict(name="bad", method="backdoor", base_config=BackdoorConfig(),
                  search_space={"lr": tune.loguniform(1e-3, 1e-1)})
    values.update(changes)
    Sweep(**values).validate()


def _method(name, values):
    from bdray.methods import get_method

    get_method(name).make_config(values)


def _uniform(low, high):
    from ray import tune

    return tune.uniform(low, high)


CASES = [
    # unknown names
    ("backdoor", {"dataset": "imagenet22k"}, "dataset", "imagenet22k"),
    ("backdoor", {"model": "vgg99"}, "model", "vgg99"),
    ("backdoor", {"attack": "trojan_horse"}, "attack", "trojan_horse"),
    ("backdoor", {"label_mode": "muddy"}, "label_mode", "muddy"),
    ("debias", {"strategy": "oversampling"}, "strategy", "oversampling"),
    ("debias", {"dataset": "celebb"}, "dataset", "celebb"),
    ("debias", {"targets": ["ge6"]}, "targets", "ge6"),
    ("dba_toy", {"strategy": "everything"}, "strategy", "everything"),
    ("pt", {"partial_init": "random"}, "partial_init", "random"),
    # rates and ratios outside their ranges
    ("backdoor", {"poison_rate": 1.2}, "poison_rate", 1.2),
    ("backdoor", {"poison_rate": -0.01}, "poison_rate", -0.01),
    ("abl", {"isolation_ratio": 1.5}, "isolation_ratio", 1.5),
    ("pt", {"isolation_ratio": 0.0}, "isolation_ratio", 0.0),
    ("pt", {"freeze_fraction": 1.0}, "freeze_fraction", 1.0),
    ("debias", {"bias_strength": 1.2}, "bias_strength", 1.2),
    ("dba_toy", {"bias_rate": -0.2}, "bias_rate", -0.2),
    # negative / zero epochs and learning rates
    ("backdoor", {"epochs": 0}, "epochs", 0),
    ("backdoor", {"lr": -0.1}, "lr", -0.1),
    ("dhbe", {"student_lr": 0.0}, "student_lr", 0.0),
    ("abl", {"isolation_epochs": -1}, "isolation_epochs", -1),
    ("cbd", {"fb_lr": -1.0}, "fb_lr", -1.0),
    ("debias", {"epochs": -3}, "epochs", -3),
    ("finetune", {"epochs": 0}, "epochs", 0),
    # trigger larger than the image, target class outside the label set
    ("backdoor", {"attack_params": {"trigger_size": 20}}, "trigger_size", 20),
    ("dhbe", {"trigger_gen_size": 17}, "trigger_gen_size", 17),
    ("debias", {"trigger_size": 17}, "trigger_size", 17),
    ("backdoor", {"target_class": 10}, "target_class", 10),
    ("backdoor", {"target_class": -1}, "target_class", -1),
    # a method that needs clean data, given none
    ("finetune", {"clean_fraction": 0.0}, "clean_fraction", 0.0),
    ("nad", {"clean_fraction": 0.0}, "clean_fraction", 0.0),
    ("fineprune", {"clean_fraction": 1.5}, "clean_fraction", 1.5),
    # nested configs and unknown fields
    ("dhbe", {"backdoor": {"attack": "nope"}}, "attack", "nope"),
    ("backdoor", {"colour": 1}, "BackdoorConfig.colour", 1),
]


@pytest.mark.parametrize("method, values, field, value", CASES)
def test_bad_config_names_field_value_and_what_is_allowed(method, values, field, value):
    with pytest.raises(ConfigError) as err:
        _method(method, values)
    assert err.value.field == field
    message = str(err.value)
    assert field in message and repr(value) in message
    assert "expected" in message  # ... what is allowed


SWEEP_CASES = [
    (dict(method="backdoors"), "method", "backdoors"),
    (dict(search_space={"lr": _uniform(0.1, 0.01)}), "search_space[lr]", (0.1, 0.01)),  # bounds reversed
    (dict(search_space={"poison_rate": _uniform(0.0, 1.5)}), "poison_rate", 1.5),         # upper bound out of range
    (dict(search_space={"epoch": _uniform(1, 2)}), "BackdoorConfig.epoch", 1),
    (dict(executor="spark"), "executor", "spark"),
    (dict(max_concurrent=0), "max_concurrent", 0),
    (dict(name="has space"), "name", "has space"),
]


@pytest.mark.parametrize("changes, field, value", SWEEP_CASES)
def test_bad_sweep_fails_validation(changes, field, value):
    with pytest.raises(ConfigError) as err:
        _sweep(**changes)
    assert err.value.field == field and repr(value) in str(err.value)


def test_table_is_at_least_thirty_configs():
    assert len(CASES) + len(SWEEP_CASES) >= 30
