"""Where a loop runs: in this process (``run_local``) or under Ray Train (``run_ray_train``)."""
from bdray.runtime.context import LocalContext, RunContext, unwrap
from bdray.runtime.local import LocalResult, run_local

__all__ = ["LocalContext", "LocalResult", "RunContext", "run_local", "unwrap"]
