"""Same config and seed on CPU → identical metrics; another seed → other poisoned samples and
other metrics. Checkpoints and artifacts load with ``weights_only=True``."""
import pickle

import pytest
import torch

from bdray.runtime import run_local


def _run(seed):
    torch.set_num_threads(2)
    return run_local("backdoor", {"epochs": 2, "seed": seed}, device="cpu", verbose=False)


def test_same_seed_same_metrics_other_seed_other_poison():
    first, again, other = _run(0), _run(0), _run(1)
    def timing(key):  # wall-clock columns: epoch_time_s, train_time_s, train_images_per_s, ...
        return key in ("time_total_s", "reported_at") or key.endswith("_time_s") or key.endswith("_per_s")

    same = [{k: v for k, v in row.items() if not timing(k)} for row in first.history]
    assert same == [{k: v for k, v in row.items() if not timing(k)} for row in again.history]  # bit for bit
    assert first.metrics["train_loss"] != other.metrics["train_loss"]
    from bdray.attacks import build_trigger, poison_split
    from bdray.data import load_dataset

    data = load_dataset("digits")
    trigger = build_trigger("badnets", {}, data.image_shape, 0)
    picks = [poison_split(data.train, trigger, rate=0.1, target_class=0, label_mode="dirty", seed=s).poison_indices
             for s in (0, 0, 1)]
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])


def test_checkpoints_load_weights_only_and_refuse_pickled_objects(tmp_path):
    from bdray.train.context import load_state, save_state_atomic

    save_state_atomic({"epoch": 3, "model": {"w": torch.ones(2)}}, tmp_path / "ok.pt")
    assert load_state(tmp_path / "ok.pt")["epoch"] == 3

    class Payload:  # an arbitrary object: unpickling it could run code
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": Payload()}, f)
    with pytest.raises(pickle.UnpicklingError):
        load_state(tmp_path / "evil.pt")
