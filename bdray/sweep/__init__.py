"""Sweeps over Ray Tune + Optuna with Ray Train trials, written to Parquet."""
from bdray.sweep.runner import DEFAULT_STORAGE, Sweep, SweepResult, run_sweep

__all__ = ["DEFAULT_STORAGE", "Sweep", "SweepResult", "run_sweep"]
