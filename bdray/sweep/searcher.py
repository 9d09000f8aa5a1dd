"""Ray Tune's ``OptunaSearch``, made safe to resume after the driver was killed.

Tune saves its experiment state every few seconds; Optuna's journal records a finished trial at
once.  A driver killed between the two leaves a trial that the study already counts as finished but
that Tune restarts on resume, and telling Optuna about it again raises ``UpdateFinishedTrialError``
and stops the whole sweep.  Here the study keeps the first, finished record and the repeat is ignored.
"""
from __future__ import annotations

from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search.optuna import OptunaSearch


class ResumableOptunaSearch(OptunaSearch):
    def on_trial_result(self, trial_id, result):
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            pass  # already finished in the study (told before the driver died)

    def on_trial_complete(self, trial_id, result=None, error=False):
        try:
            super().on_trial_complete(trial_id, result=result, error=error)
        except UpdateFinishedTrialError:
            pass
