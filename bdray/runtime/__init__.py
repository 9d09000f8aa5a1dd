"""The adapters that run a method's loop: in this process (``run_local``), as a Ray Tune trial
(``TuneTrialContext``) or as Ray Train workers (``run_ray_train``).  The interface the loops see
(``RunContext``, and ``LocalContext`` for in-process runs) is the training layer's
(``bdray.train.context``)."""
from bdray.runtime.local import LocalResult, run_local

__all__ = ["LocalResult", "run_local"]
