"""The training engine (bdray.train): phases, updates, early stops, loss tallies, and resume -- a
run stopped after epoch k and resumed repeats the uninterrupted run's epochs exactly, for the
engine itself and for each family of methods on it."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bdray.methods import get_method
from bdray.train.context import LocalContext
from bdray.train import Batch, DeviceSettings, Engine, Phase, Update

TIMING = {"epoch_time_s", "train_time_s", "train_images_per_s", "train_steps_per_s", "time_total_s", "reported_at", "resumed_from_epoch"}


class Stop(RuntimeError):
    pass


class StoppingContext(LocalContext):
    """Saves the checkpoint of epoch ``stop_after``, then dies (as a killed worker would)."""

    def __init__(self, stop_after, **kw):
        super().__init__(device="cpu", verbose=False, **kw)
        self.stop_after = stop_after

    def report(self, metrics, state=None):
        super().report(metrics, state)
        if metrics["epoch"] == self.stop_after:
            raise Stop


def comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def assert_same_rows(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            same = ra[k] == rb[k] or (isinstance(ra[k], float) and math.isnan(ra[k]) and math.isnan(rb[k]))
            assert same, (ra["epoch"], k, ra[k], rb[k])


# -- the engine on a toy problem -----------------------------------------------------------------

def toy_run(ctx, stop_at_loss=None):
    """Two phases on a linear model with dropout (torch's global random state matters on resume):
    descent, then descent on one set with ascent on another, and an early stop."""
    torch.manual_seed(0)
    x = torch.randn(40, 1, 2, 2)
    y = (x.flatten(1).sum(1) > 0).long()
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4, 2))
    engine = Engine(ctx, DeviceSettings(), seed=3, name="toy")
    model = engine.module("model", model)
    opt_a = engine.optimizer("a", torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    opt_b = engine.optimizer("b", torch.optim.SGD(model.parameters(), lr=0.01))

    def source(lo, hi, batch_size):
        def batches(gen):
            order = torch.randperm(hi - lo, generator=gen) + lo
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                yield Batch(x[idx], y[idx], idx)
        return batches

    def loss(batch):
        out = F.cross_entropy(model(batch.x), batch.y)
        return out, {"positives": ((batch.y == 1).sum(), len(batch.y))}

    def evaluate(info):
        engine.state["evaluations"] = engine.state.get("evaluations", 0) + 1
        with torch.no_grad():
            return {"weight_sum": float(model[2].weight.sum()), "phase_epoch": info.phase_epoch}

    phases = [Phase("warm", 3, [Update(opt_a, source(0, 40, 16), loss, lr=lambda p: 0.1 * (1 - p))], evaluate,
                    training=[model]),
              Phase("mixed", 4, [Update(opt_a, source(0, 30, 8), loss),
                                 Update(opt_b, source(30, 40, 4), loss, sign=-1.0, name="ascent_loss")], evaluate,
                    training=[model],
                    stop=(lambda m: m["train_loss"] < stop_at_loss) if stop_at_loss else None),
              Phase("after", 2, [Update(opt_a, source(0, 40, 40), loss)], evaluate, training=[model])]
    return engine.run(phases)


def test_engine_reports_phases_tallies_and_device_columns():
    ctx = LocalContext(device="cpu", verbose=False)
    toy_run(ctx)
    rows = ctx.history
    assert [r["stage"] for r in rows] == ["warm"] * 3 + ["mixed"] * 4 + ["after"] * 2
    assert [r["epoch"] for r in rows] == list(range(1, 10))
    assert [r["phase_epoch"] for r in rows] == [0, 1, 2, 0, 1, 2, 3, 0, 1]
    # a "mixed" epoch: 30 samples in batches of 8 (4 steps), each followed by an ascent step on the other 10
    # in batches of 4 while they last (3 steps); the ascent's loss is its own column
    mixed = rows[3]
    assert "ascent_loss" in mixed and math.isfinite(mixed["ascent_loss"]) and "ascent_loss" not in rows[0]
    # (sum, count) parts are ratios over the epoch: the share of label 1 among the samples seen
    share = rows[0]["positives"]
    assert 0.0 < share < 1.0 and rows[0]["positives"] == rows[1]["positives"]  # the same 40 samples each epoch
    for r in rows:
        assert r["precision_used"] == "fp32" and r["channels_last_used"] == 1 and r["compiled"] == 0
        assert r["train_time_s"] > 0 and r["train_images_per_s"] > 0 and r["epoch_time_s"] >= r["train_time_s"]
    ctx.cleanup()


def test_engine_stops_a_phase_early_and_goes_on_with_the_next():
    ctx = LocalContext(device="cpu", verbose=False)
    toy_run(ctx, stop_at_loss=10.0)  # every epoch's loss is below 10: "mixed" stops after its first epoch
    assert [r["stage"] for r in ctx.history] == ["warm"] * 3 + ["mixed"] + ["after"] * 2
    ctx.cleanup()


@pytest.mark.parametrize("stop_after", [2, 3, 5, 8])
def test_engine_resume_repeats_the_uninterrupted_epochs(tmp_path, stop_after):
    whole = LocalContext(device="cpu", verbose=False)
    toy_run(whole)
    stopped = StoppingContext(stop_after, checkpoint_dir=tmp_path)
    with pytest.raises(Stop):
        toy_run(stopped)
    resumed = LocalContext(device="cpu", verbose=False, checkpoint_dir=tmp_path)
    toy_run(resumed)
    assert [r["resumed_from_epoch"] for r in resumed.history] == [stop_after] * (9 - stop_after)
    expected = comparable(whole.history)
    assert_same_rows(comparable(stopped.history) + comparable(resumed.history), expected)
    whole.cleanup()


def test_engine_resume_keeps_an_early_stop(tmp_path):
    stopped = StoppingContext(4, checkpoint_dir=tmp_path)  # epoch 4 is the stopping "mixed" epoch
    with pytest.raises(Stop):
        toy_run(stopped, stop_at_loss=10.0)
    resumed = LocalContext(device="cpu", verbose=False, checkpoint_dir=tmp_path)
    toy_run(resumed, stop_at_loss=10.0)
    assert [r["stage"] for r in resumed.history] == ["after", "after"]


# -- every family of methods on the engine ---------------------------------------------------------

SMALL = {"epochs": 2}
FAMILIES = {
    # the attack, and K of its trainings vectorised in one module
    "backdoor": ({"epochs": 3}, 1),
    "backdoor_population": ({"member": {"epochs": 3}, "lrs": [0.02, 0.05]}, 2),
    # training-time defenses (poisoned data, several phases; CBD's critic uses dropout)
    "abl": ({"backdoor": SMALL, "isolation_epochs": 2, "clean_epochs": 1, "unlearn_epochs": 2,
             "unlearn_stop_accuracy": None}, 3),
    "cbd": ({"backdoor": SMALL, "fb_epochs": 1, "epochs": 2}, 2),
    "pt": ({"backdoor": SMALL, "partial_epochs": 1, "epochs": 2}, 1),
    # clean-data erasing (NAD: a teacher first, then the distilled student)
    "nad": ({"backdoor": SMALL, "epochs": 3, "teacher_epochs": 1, "samples_per_epoch": 128}, 1),
    # data-free erasing (DHBE: three optimisers, synthetic batches drawn from the epoch's generator)
    "dhbe": ({"backdoor": SMALL, "epochs": 3, "iters_per_epoch": 2, "batch_size": 32, "generator_width": 8}, 1),
    # adversarial unlearning (I-BAU: a new perturbation each round from the epoch's generator, Adam on
    # the implicit hypergradient); unlearn-recover-prune (RNP: resumed inside the recovering phase)
    "ibau": ({"backdoor": SMALL, "rounds": 3, "samples_per_round": 200}, 1),
    "rnp": ({"backdoor": SMALL, "unlearn_epochs": 2, "clean_threshold": 0.0, "recover_epochs": 2,
             "samples_per_epoch": 128}, 3),
    # shared adversarial unlearning (SAU: a PGD perturbation per batch against a frozen reference model)
    "sau": ({"backdoor": SMALL, "rounds": 3, "samples_per_round": 256}, 1),
    # fairness (DBA's trigger training on the attribute data)
    "debias": ({"strategy": "dba", "epochs": 3}, 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(FAMILIES))
def test_method_resume_repeats_the_uninterrupted_epochs(method, tmp_path, artifact_root):
    overrides, stop_after = FAMILIES[method]
    spec = get_method(method)
    cfg = spec.make_config(overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = LocalContext(device="cpu", verbose=False, artifact_root=artifact_root)
        spec.loop(cfg, whole)
        stopped = StoppingContext(stop_after, checkpoint_dir=tmp_path, artifact_root=artifact_root)
        with pytest.raises(Stop):
            spec.loop(cfg, stopped)
        resumed = LocalContext(device="cpu", verbose=False, checkpoint_dir=tmp_path, artifact_root=artifact_root)
        spec.loop(cfg, resumed)
    finally:
        torch.set_num_threads(threads)
    assert resumed.history[0]["resumed_from_epoch"] == stop_after
    assert_same_rows(comparable(stopped.history) + comparable(resumed.history), comparable(whole.history))
    whole.cleanup()
