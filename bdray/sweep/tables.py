"""The Parquet tables of a sweep (one row per trial, one per report) from Tune's results: written
after each run, or rebuilt from Tune's own records."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pandas as pd

from bdray.methods import get_method
from bdray.sweep import results as R
from bdray.sweep import storage as S
from bdray.sweep.spec import Sweep


def result_tables(sweep: Sweep, tune_run: str, grid) -> Tuple[pd.DataFrame, pd.DataFrame]:
    spec = get_method(sweep.method)
    trial_rows: List[Dict[str, Any]] = []
    epoch_rows: List[Dict[str, Any]] = []
    for result in grid:
        params = {k: v for k, v in (result.config or {}).items() if k in sweep.search_space}
        cfg = sweep.base_config.replace(**params)
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id") or Path(result.path).name.split("_")[-2]
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        if spec.members is not None:  # a packed population: one row per member, as if K trials
            trial_rows.extend(R.member_trial_rows(spec, sweep=sweep.name, tune_run=tune_run, trial_id=trial_id,
                                                  cfg=cfg, metrics=metrics, error=error))
            epoch_rows.extend(R.member_epoch_rows(spec, sweep=sweep.name, tune_run=tune_run, trial_id=trial_id,
                                                  cfg=cfg, history=result.metrics_dataframe))
            continue
        trial_rows.append(R.trial_row(sweep=sweep.name, tune_run=tune_run, trial_id=trial_id, method=sweep.method,
                                      cfg=cfg, metrics=metrics, error=error))
        epoch_rows.extend(R.epoch_rows(sweep=sweep.name, tune_run=tune_run, trial_id=trial_id,
                                       history=result.metrics_dataframe))
    return R.frame(trial_rows), R.frame(epoch_rows, leading=("sweep", "tune_run", "trial_id", "epoch"))


def rebuild_tables(sweep: Sweep) -> pd.DataFrame:
    """Rebuild ``trials.parquet``/``epochs.parquet`` rows of this sweep and method from Tune's own
    records (every experiment folder under ``<sweep>/tune``), e.g. after the tables were lost or a
    driver died before writing them.  Rows of other methods in the same folder are kept."""
    import pyarrow.fs as pafs
    from ray.tune import ExperimentAnalysis, ResultGrid

    prefix = f"{sweep.name}-{sweep.method}-"
    tune_root = S.join(sweep.root, "tune")
    fs, base = S.filesystem(tune_root)

    runs = sorted(info.base_name for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
                  if info.type == pafs.FileType.Directory and info.base_name.startswith(prefix))
    trials, epochs = [], []
    for run in runs:
        grid = ResultGrid(ExperimentAnalysis(S.join(tune_root, run)))
        t, e = result_tables(sweep, run, grid)
        trials.append(t)
        epochs.append(e)
    trials_df = pd.concat(trials, ignore_index=True) if trials else pd.DataFrame()
    if len(trials_df):
        all_trials = S.append_rows(sweep.trials_path, trials_df)
        epochs_df = pd.concat(epochs, ignore_index=True)
        if len(epochs_df):
            S.append_rows(sweep.epochs_path, epochs_df, key=("sweep", "trial_id", "epoch"))
        return all_trials
    return trials_df
