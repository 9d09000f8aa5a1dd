"""Run a method's loop in this process, with no Ray at all (tests, debugging)."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, List

from bdray.config import Config
from bdray.train.context import LocalContext


@dataclasses.dataclass
class LocalResult:
    metrics: Dict[str, Any]          # final metrics (floats/ints only)
    history: List[Dict[str, Any]]    # one row per report
    model: Any                       # the trained model (unwrapped)
    wall_time_s: float


def run_local(method: str, config: Config | Dict[str, Any] | None = None, *, device=None,
              checkpoint_dir=None, artifact_root=None, verbose: bool = True) -> LocalResult:
    from bdray.methods import get_method

    spec = get_method(method)
    cfg = spec.make_config(config)
    ctx = LocalContext(device=device, checkpoint_dir=checkpoint_dir, artifact_root=artifact_root, verbose=verbose)
    t0 = time.time()
    try:
        out = spec.loop(cfg, ctx)
    finally:
        ctx.cleanup()
    metrics = {k: v for k, v in out.items() if isinstance(v, (int, float))}
    return LocalResult(metrics, ctx.history, out.get("model"), time.time() - t0)
