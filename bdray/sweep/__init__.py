"""Sweeps over Ray Tune + Optuna with Ray Train trials, written to Parquet."""
from bdray.sweep.runner import SweepInterrupted, run_sweep
from bdray.sweep.spec import DEFAULT_STORAGE, Sweep, SweepResult

__all__ = ["DEFAULT_STORAGE", "Sweep", "SweepInterrupted", "SweepResult", "run_sweep"]
