"""Bad configs fail when the config is built -- before any Ray work -- naming field and value."""
import pytest

from bdray.config import ConfigError
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.dhbe import DHBEConfig


@pytest.mark.parametrize("values, field", [
    ({"attack": "trojan_horse"}, "attack"),
    ({"dataset": "imagenet22k"}, "dataset"),
    ({"model": "vgg99"}, "model"),
    ({"poison_rate": 1.2}, "poison_rate"),
    ({"poison_rate": -0.01}, "poison_rate"),
    ({"attack_params": {"trigger_size": 20}}, "trigger_size"),  # digits are 16×16
    ({"target_class": 10}, "target_class"),
    ({"epochs": 0}, "epochs"),
    ({"lr": -0.1}, "lr"),
    ({"label_mode": "muddy"}, "label_mode"),
    ({"colour": 1}, "BackdoorConfig.colour"),
])
def test_backdoor_config_errors(values, field):
    with pytest.raises(ConfigError) as err:
        BackdoorConfig.from_dict(values)
    assert err.value.field == field
    assert repr(err.value.value) in str(err.value)


@pytest.mark.parametrize("values, field", [
    ({"lambda_abr": -1.0}, "lambda_abr"),
    ({"student_lr": 0.0}, "student_lr"),
    ({"trigger_gen_size": 17}, "trigger_gen_size"),
    ({"trigger_position": "anywhere"}, "trigger_position"),
    ({"lambda_abr": 0.1, "trigger_generator": False}, "trigger_generator"),
    ({"backdoor": {"attack": "nope"}}, "attack"),
])
def test_dhbe_config_errors(values, field):
    with pytest.raises(ConfigError) as err:
        DHBEConfig.from_dict(values)
    assert err.value.field == field


def test_round_trip_and_columns():
    cfg = DHBEConfig.from_dict({"student_lr": 0.05, "backdoor": {"poison_rate": 0.2,
                                                                  "attack_params": {"trigger_size": 4}}})
    assert DHBEConfig.from_dict(cfg.to_dict()) == cfg
    cols = cfg.columns()
    assert cols["student_lr"] == 0.05 and cols["backdoor_poison_rate"] == 0.2
    assert cols["backdoor_attack_trigger_size"] == 4


def test_replace_reaches_nested_fields_and_validates():
    cfg = DHBEConfig().replace(**{"backdoor.poison_rate": 0.05, "student_lr": 0.2})
    assert cfg.backdoor.poison_rate == 0.05 and cfg.student_lr == 0.2
    with pytest.raises(ConfigError, match="poison_rate"):
        DHBEConfig().replace(**{"backdoor.poison_rate": 3.0})


def test_digest_is_stable_and_config_sensitive():
    assert BackdoorConfig().digest() == BackdoorConfig().digest()
    assert BackdoorConfig().digest() != BackdoorConfig(seed=1).digest()


def test_dfad_is_dhbe_without_regulariser():
    assert DHBEConfig(lambda_abr=0.0, trigger_generator=False).is_dfad
    assert not DHBEConfig().is_dfad


def test_replace_sets_attack_parameters_and_switches_attacks():
    cfg = DHBEConfig().replace(**{"backdoor.attack_params.trigger_size": 5})
    assert cfg.backdoor.attack_params["trigger_size"] == 5 and cfg.backdoor.attack_params["pattern"] == "checkerboard"
    with pytest.raises(ConfigError, match="trigger_size"):
        DHBEConfig().replace(**{"backdoor.attack_params.trigger_size": 40})
    blend = BackdoorConfig().replace(attack="blend")
    assert blend.attack_params == {"alpha": 0.2, "pattern_seed": 0}
    assert BackdoorConfig(attack_params={}).digest() == BackdoorConfig(attack_params={"trigger_size": 3}).digest()
