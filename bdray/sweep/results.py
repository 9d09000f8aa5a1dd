"""The sweep's Parquet tables.

``trials.parquet``: one row per trial -- sweep, tune_run, trial_id, method, dataset, model,
attack, seed, every config field as its own column, the final metrics, status, error,
wall_time_s, hardware, node_ip, node_id (the Ray node the trial's rank-0 worker ran on),
artifacts_trained / artifacts_reused, the determinism settings (torch_version,
torch_deterministic_algorithms, cudnn_deterministic, cudnn_benchmark, torch_threads), bdray_version, git_commit, finished_at.

``epochs.parquet``: one row per report -- sweep, tune_run, trial_id, epoch and every metric.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd

import bdray
from bdray.metrics import METRIC_NAMES

IDENTITY_COLUMNS = ("sweep", "tune_run", "trial_id", "method", "dataset", "model", "attack", "seed")
# Tune's own bookkeeping that is not a metric of ours
_TUNE_KEYS = {"timestamp", "checkpoint_dir_name", "checkpoint_path", "done", "training_iteration", "trial_id",
              "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
              "iterations_since_restore", "config", "should_checkpoint"}


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def identity(method: str, cfg) -> Dict[str, Any]:
    """dataset/model/attack/seed of a config (a defense config takes them from its ``backdoor``);
    ``attack`` is ``clean`` when nothing is poisoned (``poison_rate`` 0)."""
    threat = getattr(cfg, "backdoor", cfg)
    attack = getattr(threat, "attack", "")
    if attack and getattr(threat, "poison_rate", None) == 0:
        attack = "clean"  # nothing poisoned: the clean model (a defense's cost when there is no attack)
    return {"method": method, "dataset": getattr(threat, "dataset", ""), "model": getattr(threat, "model", ""),
            "attack": attack, "seed": cfg.seed}


def trial_row(*, sweep: str, tune_run: str, trial_id: str, method: str, cfg, metrics: Dict[str, Any],
              error: str | None) -> Dict[str, Any]:
    row: Dict[str, Any] = {"sweep": sweep, "tune_run": tune_run, "trial_id": trial_id, **identity(method, cfg)}
    row.update({k: v for k, v in cfg.columns().items() if k not in row})
    for name in METRIC_NAMES:
        row[name] = float(metrics.get(name, math.nan))
    for key, value in metrics.items():
        if key not in row and key not in _TUNE_KEYS and key not in ("hardware", "node_id", "torch_version") and isinstance(value, (int, float, str)):
            row[key] = value
    row.update(status="ERROR" if error else "TERMINATED", error=error or "",
               wall_time_s=float(metrics.get("time_total_s", math.nan)), hardware=str(metrics.get("hardware", "")),
               node_ip=str(metrics.get("node_ip", "")), node_id=str(metrics.get("node_id", "")),
               torch_version=str(metrics.get("torch_version", "")), bdray_version=bdray.__version__, git_commit=git_commit(),
               finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return row


def epoch_rows(*, sweep: str, tune_run: str, trial_id: str, history: pd.DataFrame | None) -> List[Dict[str, Any]]:
    if history is None or history.empty:
        return []
    rows = []
    for rec in history.to_dict("records"):
        row = {"sweep": sweep, "tune_run": tune_run, "trial_id": trial_id}
        row.update({k: v for k, v in rec.items() if k not in _TUNE_KEYS and not k.startswith("config/")})
        row["time_total_s"] = rec.get("time_total_s")
        rows.append(row)
    return rows


def member_trial_rows(spec, *, sweep: str, tune_run: str, trial_id: str, cfg, metrics: Dict[str, Any],
                      error: str | None) -> List[Dict[str, Any]]:
    """A population trial (``spec.members``) as one trials row per member: ``trial_id`` is
    ``<trial>-m<k>``, ``method`` the member method, the config columns member k's own;
    ``population_trial_id`` / ``population_member`` / ``population_size`` say where it was packed."""
    rows, members = [], spec.members(cfg, metrics)
    for k, member_cfg, member_metrics in members:
        row = trial_row(sweep=sweep, tune_run=tune_run, trial_id=f"{trial_id}-m{k}", method=spec.member_method,
                        cfg=member_cfg, metrics=member_metrics, error=error)
        row.update(population_trial_id=trial_id, population_member=k, population_size=len(members))
        rows.append(row)
    return rows


def member_epoch_rows(spec, *, sweep: str, tune_run: str, trial_id: str, cfg,
                      history: pd.DataFrame | None) -> List[Dict[str, Any]]:
    rows = []
    for row in epoch_rows(sweep=sweep, tune_run=tune_run, trial_id=trial_id, history=history):
        for k, _, member_metrics in spec.members(cfg, row):
            rows.append({**member_metrics, "trial_id": f"{trial_id}-m{k}", "population_trial_id": trial_id,
                         "population_member": k})
    return rows


def frame(rows: List[Dict[str, Any]], leading=IDENTITY_COLUMNS) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    first = [c for c in leading if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]
