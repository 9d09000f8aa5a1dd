import multiprocessing as mp

import torch

from bdray.artifacts import MODEL_FILE, ArtifactStore, artifact_key
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.attack.threat import ARTIFACT_FORMAT, ARTIFACT_KIND, backdoor_artifact

TINY = BackdoorConfig(epochs=1, batch_size=256)


def _key(cfg):
    return artifact_key(ARTIFACT_KIND, ARTIFACT_FORMAT, cfg.identity())


def test_artifact_is_trained_once_then_reused(tmp_path):
    state1, meta1, trained1 = backdoor_artifact(TINY, tmp_path, "cpu", verbose=False)
    state2, meta2, trained2 = backdoor_artifact(TINY, tmp_path, "cpu", verbose=False)
    assert trained1 and not trained2
    assert meta1["sha256"] == meta2["sha256"] and meta1["key"] == _key(TINY)
    assert meta1["config"] == TINY.identity() and meta1["format"] == ARTIFACT_FORMAT
    assert all(torch.equal(state1["model"][k], state2["model"][k]) for k in state1["model"])
    assert len(state1["poison_indices"]) == round(0.1 * 1347)
    # a different config is a different artifact
    assert _key(TINY) != _key(TINY.replace(seed=1))


def test_the_store_builds_each_key_once_and_a_new_version_rebuilds(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def build(workdir):
        calls.append(workdir)
        return {"model": {"w": torch.arange(3.0)}}, {"note": "built"}

    for _ in range(2):
        state, meta, built = store.get_or_build("toy", 1, {"a": 1}, build)
    assert len(calls) == 1 and not built and meta["note"] == "built" and torch.equal(state["model"]["w"], torch.arange(3.0))
    _, _, built = store.get_or_build("toy", 2, {"a": 1}, build)  # a bumped version retires the old artifact
    assert built and len(calls) == 2
    assert store.path("toy", artifact_key("toy", 1, {"a": 1})).is_dir()


def test_corrupted_artifact_is_retrained_not_loaded(tmp_path):
    store = ArtifactStore(tmp_path)
    backdoor_artifact(TINY, tmp_path, "cpu", verbose=False)
    path = store.path(ARTIFACT_KIND, _key(TINY)) / MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncate
    assert not store.is_valid(ARTIFACT_KIND, _key(TINY))
    _, _, trained = backdoor_artifact(TINY, tmp_path, "cpu", verbose=False)
    assert trained and store.is_valid(ARTIFACT_KIND, _key(TINY))


def _build(root, queue):
    torch.set_num_threads(1)
    _, _, trained = backdoor_artifact(TINY, root, "cpu", verbose=False)
    queue.put(trained)


def test_concurrent_callers_train_the_artifact_once(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build, args=(str(tmp_path), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == [False, True]
