import multiprocessing as mp

import torch

from bdray.artifacts import MODEL_FILE, ArtifactStore, artifact_key
from bdray.methods.backdoor import BackdoorConfig

TINY = BackdoorConfig(epochs=1, batch_size=256)


def test_artifact_is_trained_once_then_reused(tmp_path):
    store = ArtifactStore(tmp_path)
    state1, meta1, trained1 = store.get_or_train(TINY, "cpu", verbose=False)
    state2, meta2, trained2 = store.get_or_train(TINY, "cpu", verbose=False)
    assert trained1 and not trained2
    assert meta1["sha256"] == meta2["sha256"] and meta1["key"] == artifact_key(TINY)
    assert all(torch.equal(state1["model"][k], state2["model"][k]) for k in state1["model"])
    assert len(state1["poison_indices"]) == round(0.1 * 1347)
    # a different config is a different artifact
    assert artifact_key(TINY) != artifact_key(TINY.replace(seed=1))


def test_corrupted_artifact_is_retrained_not_loaded(tmp_path):
    store = ArtifactStore(tmp_path)
    store.get_or_train(TINY, "cpu", verbose=False)
    path = store.path(artifact_key(TINY)) / MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncate
    assert not store.is_valid(artifact_key(TINY))
    _, _, trained = store.get_or_train(TINY, "cpu", verbose=False)
    assert trained and store.is_valid(artifact_key(TINY))


def _build(root, queue):
    torch.set_num_threads(1)
    _, _, trained = ArtifactStore(root).get_or_train(TINY, "cpu", verbose=False)
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
