"""DBA's toy study from its Parquet: Classification Boundary Error against the bias rate per
strategy (Fig. 5) and the learned boundaries on the meshgrid (Figs. 4 and 6)."""
from __future__ import annotations

import math

import pandas as pd

from bdray.methods.fairness.dba_toy import STRATEGIES, hex_to_bits


def boundary_error_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean (and std, count) boundary error per bias rate (rows) and strategy (columns)."""
    t = trials.pivot_table(index="bias_rate", columns="strategy", values="boundary_error", aggfunc=["mean", "std",
                                                                                                     "count"])
    t.columns = [f"{strategy} {stat}" for stat, strategy in t.columns]
    order = [f"{s} {stat}" for s in STRATEGIES for stat in ("mean", "std", "count") if f"{s} {stat}" in t.columns]
    return t[order].reset_index()


def plot_boundary_error(trials: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for strategy in STRATEGIES:
        part = trials[trials["strategy"] == strategy].groupby("bias_rate")["boundary_error"]
        if len(part):
            mean, std = part.mean(), part.std().fillna(0)
            ax.errorbar(mean.index, mean, yerr=std, marker="o", capsize=3, label=strategy)
    ax.set_xlabel("bias rate")
    ax.set_ylabel("Classification Boundary Error (meshgrid points)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("DBA toy study (Fig. 5)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_boundaries(trials: pd.DataFrame, epochs: pd.DataFrame, path: str, bias_rate: float, seed: int = 0) -> None:
    """One panel per strategy: the meshgrid coloured by predicted class, the true boundary x = 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = trials[(trials["bias_rate"] == bias_rate) & (trials["seed"] == seed)]
    fig, axes = plt.subplots(1, len(STRATEGIES), figsize=(4 * len(STRATEGIES), 4), dpi=110)
    for ax, strategy in zip(axes, STRATEGIES):
        row = chosen[chosen["strategy"] == strategy]
        ax.set_title(strategy)
        ax.set_xticks([])
        ax.set_yticks([])
        if row.empty:
            continue
        size = int(row["grid_size"].iloc[0])
        reports = epochs[epochs["trial_id"] == row["trial_id"].iloc[0]]
        grid = hex_to_bits(str(reports["boundary_grid"].iloc[-1]), size * size).reshape(size, size)
        ax.imshow(grid.numpy(), origin="lower", extent=(-1, 1, -1, 1), cmap="coolwarm_r", alpha=0.6, vmin=0, vmax=1)
        ax.axvline(0, color="black", lw=1, ls="--")
        error = row["boundary_error"].iloc[0]
        ax.set_xlabel(f"boundary error {int(error) if not math.isnan(error) else ''}")
    fig.suptitle(f"learned boundaries, bias rate {bias_rate:g} (red: class 0, blue: class 1)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
