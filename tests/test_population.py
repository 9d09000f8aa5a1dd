"""Population mode: K backdoor trainings stacked with torch.func and vmap in one trial; member k
is the backdoor run with lrs[k]; a sweep records each member as its own trials row."""
import pytest
import torch
from ray import tune

from bdray.config import ConfigError
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.population import PopulationConfig
from bdray.runtime import run_local
from bdray.sweep import Sweep, run_sweep
from bdray.sweep import storage as S

POP = PopulationConfig(member=BackdoorConfig(epochs=2), lrs=(0.01, 0.05), weight_decays=(5e-4, 1e-3))


def test_members_match_separate_backdoor_runs():
    torch.set_num_threads(2)
    pop = run_local("backdoor_population", POP, device="cpu", verbose=False)
    last = pop.history[-1]
    assert last["population_size"] == 2 and len(pop.history) == 2
    singles = [run_local("backdoor", POP.member_config(k), device="cpu", verbose=False) for k in range(2)]
    for k, single in enumerate(singles):
        assert POP.member_config(k).lr == POP.lrs[k] and POP.member_config(k).weight_decay == POP.weight_decays[k]
        assert last[f"member{k}_train_loss"] == pytest.approx(single.metrics["train_loss"], rel=1e-3)
        assert abs(last[f"member{k}_acc"] - single.metrics["acc"]) <= 0.02
        assert abs(last[f"member{k}_asr"] - single.metrics["asr"]) <= 0.02
    # the members really trained with their own settings
    assert abs(last["member0_train_loss"] - last["member1_train_loss"]) > 0.05


@pytest.mark.parametrize("changes,field", [
    ({"lrs": ()}, "lrs"), ({"lrs": (0.1, -0.1)}, "lrs"), ({"weight_decays": (0.1,)}, "weight_decays"),
    ({"momentums": (0.9, 1.0)}, "momentums"), ({"member": BackdoorConfig(compile=True)}, "member.compile"),
    ({"member": BackdoorConfig(channels_last="on")}, "member.channels_last")])
def test_bad_population_configs(changes, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        POP.replace(**changes)


@pytest.mark.ray
def test_population_sweep_writes_one_row_per_member(ray_local, tmp_path):
    base = PopulationConfig(member=BackdoorConfig(epochs=1), lrs=(0.01, 0.05, 0.1))
    sweep = Sweep(name="population_test", method="backdoor_population", base_config=base,
                  search_space={"member.poison_rate": tune.grid_search([0.05, 0.1])}, search="grid",
                  num_samples=1, storage_path=str(tmp_path), executor="tune", verbose=False)
    run_sweep(sweep)
    trials = S.read_parquet(sweep.trials_path)
    assert len(trials) == 6 and (trials["status"] == "TERMINATED").all()
    assert (trials["method"] == "backdoor").all() and trials["trial_id"].is_unique
    assert trials["population_trial_id"].nunique() == 2 and set(trials["population_member"]) == {0, 1, 2}
    for _, group in trials.groupby("population_trial_id"):
        assert sorted(group["lr"]) == [0.01, 0.05, 0.1] and group["poison_rate"].nunique() == 1
        assert group["acc"].notna().all() and group["acc"].nunique() > 1
    assert set(trials["poison_rate"]) == {0.05, 0.1}
    epochs = S.read_parquet(sweep.epochs_path)
    assert len(epochs) == 6 and set(epochs["trial_id"]) == set(trials["trial_id"])
