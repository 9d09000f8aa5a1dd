"""The Parquet tables of a sweep (one row per trial, one per report) from Tune's results: written
after each run, or rebuilt from Tune's own records."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pandas as pd

from bdray.methods import get_method
from bdray.sweep import results as R
from bdray.sweep import storage as S
from bdray.sweep.seeds import SEED_INDEX, config_id, trial_config
from bdray.sweep.spec import Sweep, objectives_text


def result_tables(sweep: Sweep, tune_run: str, grid) -> Tuple[pd.DataFrame, pd.DataFrame]:
    spec = get_method(sweep.method)
    trial_rows: List[Dict[str, Any]] = []
    epoch_rows: List[Dict[str, Any]] = []
    for result in grid:
        params = {k: v for k, v in (result.config or {}).items() if k in sweep.search_space or k == SEED_INDEX}
        cfg = trial_config(sweep.base_config, params)
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id") or Path(result.path).name.split("_")[-2]
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        replica = {SEED_INDEX: int(params.get(SEED_INDEX, 0)), "config_id": config_id(sweep.base_config, params),
                   "selected_on": sweep.selected_on, "objectives": objectives_text(sweep.objectives)}
        # a Tune scheduler (ASHA, HyperBand) ended the trial before its last epoch
        planned, reached = metrics.get("epochs_planned"), metrics.get("epoch")
        replica["stopped_by_scheduler"] = bool(sweep.scheduler != "none" and error is None and planned is not None
                                               and reached is not None and int(reached) < int(planned))
        if spec.members is not None:  # a packed population: one row per member, as if K trials
            members = R.member_trial_rows(spec, sweep=sweep.name, tune_run=tune_run, trial_id=trial_id, cfg=cfg,
                                          metrics=metrics, error=error)
            shared = compute_hours(sweep, metrics)  # the members trained together: each has its share
            trial_rows.extend({**row, **{k: v / len(members) for k, v in shared.items()}} for row in members)
            epoch_rows.extend(R.member_epoch_rows(spec, sweep=sweep.name, tune_run=tune_run, trial_id=trial_id,
                                                  cfg=cfg, history=result.metrics_dataframe))
            continue
        replica.update(compute_hours(sweep, metrics))
        trial_rows.append({**R.trial_row(sweep=sweep.name, tune_run=tune_run, trial_id=trial_id, method=sweep.method,
                                         cfg=cfg, metrics=metrics, error=error), **replica})
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


def compute_hours(sweep: Sweep, metrics: Dict[str, Any]) -> Dict[str, float]:
    """``cpu_hours`` / ``gpu_hours`` of a trial: its wall time times the CPUs / GPUs it held
    (every Train worker's, plus the Tune trial's own with the Train executor) -- what the cluster
    spent on it, not how busy the cores were.  Attack artifacts trained before the trials are not in it."""
    hours = float(metrics.get("time_total_s", float("nan"))) / 3600.0
    workers = sweep.workers_per_trial
    cpus = sweep.cpus_per_worker * workers + (sweep.driver_cpus if sweep.executor == "train" else 0.0)
    return {"cpu_hours": hours * cpus, "gpu_hours": hours * sweep.gpus_per_worker * workers}
