"""The sweep's search algorithms: Ray Tune's ``OptunaSearch`` made safe to resume, and the
wrapper that replicates each configuration over seeds.

``ResumableOptunaSearch``: Ray Tune's ``OptunaSearch``, made safe to resume after the driver was killed.

Tune saves its experiment state every few seconds; Optuna's journal records a finished trial at
once.  A driver killed between the two leaves a trial that the study already counts as finished but
that Tune restarts on resume, and telling Optuna about it again raises ``UpdateFinishedTrialError``
and stops the whole sweep.  Here the study keeps the first, finished record and the repeat is ignored.

``PicklableNSGAIISampler``: Optuna's NSGA-II sampler in a form Tune can save with its experiment state
(Optuna 5.1's holds a thread lock, which does not pickle).
"""
from __future__ import annotations

import copy
import math
import os
import pickle
import tempfile
import threading
from typing import Any, Dict, Optional

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.util import _set_search_properties_backwards_compatible

from bdray.sweep.seeds import SEED_INDEX


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGA-II whose locks are left out when pickled and made anew when unpickled (Tune pickles
    the searcher, and with it the sampler, into its experiment state)."""

    def __getstate__(self):
        state = dict(self.__dict__)
        locks = {k: isinstance(v, type(threading.RLock())) for k, v in state.items() if isinstance(v, _LOCK_TYPES)}
        for name in locks:
            del state[name]
        state["_bdray_locks"] = locks
        return state

    def __setstate__(self, state):
        state = dict(state)
        for name, reentrant in state.pop("_bdray_locks", {}).items():
            state[name] = threading.RLock() if reentrant else threading.Lock()
        self.__dict__.update(state)



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


class SeedReplicas(Searcher):
    """Suggest every configuration of the wrapped searcher ``seeds`` times (replica i carries
    ``seed_index = i``) and tell the wrapped searcher, once every replica finished, the replicas'
    mean of each objective.  Unlike Tune's ``Repeater`` it averages every metric of a
    multi-objective study, and its own bookkeeping is saved with the searcher's, so a resumed
    sweep still knows which replicas belong together."""

    def __init__(self, searcher: Searcher, seeds: int):
        self.searcher = searcher
        self.seeds = int(seeds)
        self._group_of: Dict[str, str] = {}               # trial id -> its group's first trial id
        self._groups: Dict[str, Dict[str, Any]] = {}      # first trial id -> {"config", "results"}
        self._open: Optional[str] = None                  # the group still handing out replicas
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return _set_search_properties_backwards_compatible(self.searcher.set_search_properties, metric, mode,
                                                           config, **spec)

    def suggest(self, trial_id: str):
        group = self._groups.get(self._open) if self._open else None
        if group is None or len(group["members"]) >= self.seeds:
            config = self.searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self._open = trial_id
            group = self._groups[trial_id] = {"config": copy.deepcopy(config), "members": [], "results": {}}
        group["members"].append(trial_id)
        self._group_of[trial_id] = self._open
        return {**group["config"], SEED_INDEX: len(group["members"]) - 1}

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        if self._group_of.get(trial_id) == trial_id:  # the wrapped searcher knows the first replica only
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        first = self._group_of.get(trial_id)
        if first is None:
            return
        group = self._groups[first]
        metrics = self.searcher.metric if isinstance(self.searcher.metric, list) else [self.searcher.metric]
        group["results"][trial_id] = {m: (result or {}).get(m) for m in metrics}
        if len(group["results"]) < self.seeds:
            return
        means = {}
        for m in metrics:
            values = [r[m] for r in group["results"].values() if r[m] is not None and math.isfinite(r[m])]
            if values:
                means[m] = sum(values) / len(values)
        complete = len(means) == len(metrics)
        self.searcher.on_trial_complete(first, result=means if complete else None, error=error or not complete)

    def get_state(self) -> Dict:
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "searcher"}

    def set_state(self, state: Dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            inner = os.path.join(tmp, "inner.pkl")
            self.searcher.save(inner)
            with open(inner, "rb") as fh:
                inner_bytes = fh.read()
        with open(checkpoint_path, "wb") as fh:
            pickle.dump({"replicas": self.get_state(), "inner": inner_bytes}, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            saved = pickle.load(fh)
        self.set_state(saved["replicas"])
        with tempfile.TemporaryDirectory() as tmp:
            inner = os.path.join(tmp, "inner.pkl")
            with open(inner, "wb") as fh:
                fh.write(saved["inner"])
            self.searcher.restore(inner)
