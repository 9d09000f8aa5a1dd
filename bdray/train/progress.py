"""A progress bar for a long single run (an attack artifact's training): plain tqdm in a driver or
a script, Ray's ``tqdm_ray`` inside a Ray task or actor, whose bars the driver draws in place of
interleaved log lines."""
from __future__ import annotations

import sys
from typing import Any, Dict, Optional


def _in_ray_worker() -> bool:
    try:
        from ray._private import worker

        return worker.global_worker.connected and worker.global_worker.mode == worker.WORKER_MODE
    except Exception:  # no Ray, or its private layout changed: a plain bar is still right
        return False


class EpochBar:
    """Advanced by the loop's reports (``epoch``, ``epochs_planned``); shows ``acc``/``asr``."""

    SHOWN = ("acc", "asr", "val_acc")

    def __init__(self, description: str):
        self.description = description
        self._bar: Optional[Any] = None
        self._done = 0

    def update(self, metrics: Dict[str, Any]) -> None:
        epoch, total = metrics.get("epoch"), metrics.get("epochs_planned")
        if epoch is None or total is None:
            return
        if self._bar is None:
            if _in_ray_worker():
                from ray.experimental.tqdm_ray import tqdm
                self._bar = tqdm(total=int(total), desc=self.description)
            else:
                from tqdm import tqdm
                self._bar = tqdm(total=int(total), desc=self.description, unit="epoch", file=sys.stderr,
                                 dynamic_ncols=True)
            self._done = int(metrics.get("resumed_from_epoch") or 0)
            self._bar.update(self._done)
        shown = {k: f"{metrics[k]:.3f}" for k in self.SHOWN if isinstance(metrics.get(k), float)}
        if hasattr(self._bar, "set_postfix"):
            self._bar.set_postfix(shown, refresh=False)
        self._bar.update(int(epoch) - self._done)
        self._done = int(epoch)
        if self._done >= int(total):
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
