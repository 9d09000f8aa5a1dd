import os

import pytest

# Tests share one Ray instance and one artifact store per session; keep Ray quiet and local.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


@pytest.fixture(scope="session")
def artifact_root(tmp_path_factory):
    """One content-addressed artifact store for the whole session, so each distinct backdoored
    model is trained once and reused by every test that needs it."""
    return str(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def ray_local():
    """A private local Ray instance for the session (never an existing cluster on this machine)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_TRAIN_V2_ENABLED": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Some tests set torch's intra-op thread count for the process (bdray.claims' in-process runs do
    too); put it back after each test, so no test's numbers depend on which tests ran before it
    (the float reduction order, hence a training run's result, changes with the thread count)."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
