"""The ACC–ASR trade-off curve (DHBE Fig. 3): a scatter of (asr, acc) per trial and a fitted
logistic curve  acc(asr) = low + (high - low) / (1 + exp(-k·(asr - mid))).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import pandas as pd


@dataclasses.dataclass
class LogisticFit:
    low: float
    high: float
    k: float
    mid: float
    rmse: float

    def __call__(self, asr):
        asr = np.asarray(asr, dtype=float)
        return self.low + (self.high - self.low) / (1.0 + np.exp(-self.k * (asr - self.mid)))


def _logistic(x, low, high, k, mid):
    return low + (high - low) / (1.0 + np.exp(-k * (x - mid)))


def fit_logistic(asr: Sequence[float], acc: Sequence[float], min_asr_span: float = 0.05) -> Optional[LogisticFit]:
    """Least-squares logistic fit of acc against asr; None with fewer than 4 distinct points, when
    the points span less than ``min_asr_span`` of ASR (no trade-off to fit), or when the optimiser
    does not converge."""
    from scipy.optimize import curve_fit

    x = np.asarray(asr, dtype=float)
    y = np.asarray(acc, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(np.round(x, 6))) < 4 or np.ptp(x) < min_asr_span:
        return None
    p0 = [y.min(), y.max(), 10.0, float(np.median(x))]
    bounds = ([0.0, 0.0, -1e3, -1.0], [1.0, 1.0, 1e3, 2.0])
    try:
        params, _ = curve_fit(_logistic, x, y, p0=p0, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    rmse = float(np.sqrt(np.mean((_logistic(x, *params) - y) ** 2)))
    return LogisticFit(*map(float, params), rmse=rmse)


def plot_tradeoff(trials: pd.DataFrame, path: str, *, group: str = "method", color_by: Optional[str] = None,
                  title: str = "ACC–ASR trade-off", reference: Optional[dict] = None) -> dict:
    """Scatter (asr, acc) per ``group`` with its logistic fit; returns {group: LogisticFit|None}.

    ``color_by`` colours the points by a numeric column (e.g. the swept learning rate);
    ``reference`` marks a point such as the backdoored model: {"asr": .., "acc": .., "label": ..}.
    Rows with ``acc_ci95`` / ``asr_ci95`` (per-configuration means of seed replicas,
    ``analysis.seeds.config_means``) get 95 % CI error bars.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    fits = {}
    df = trials.dropna(subset=["asr", "acc"])
    markers = "osD^v<>"
    for i, (name, part) in enumerate(df.groupby(group, sort=True)):
        kwargs = {}
        if color_by and color_by in part and pd.api.types.is_numeric_dtype(part[color_by]):
            kwargs = {"c": part[color_by], "cmap": "viridis"}
        if "acc_ci95" in part and part["acc_ci95"].notna().any():  # per-configuration means of seed replicas
            ax.errorbar(part["asr"] * 100, part["acc"] * 100, xerr=part["asr_ci95"].fillna(0) * 100,
                        yerr=part["acc_ci95"].fillna(0) * 100, fmt="none", ecolor="gray", elinewidth=0.8, capsize=2)
        sc = ax.scatter(part["asr"] * 100, part["acc"] * 100, marker=markers[i % len(markers)], label=str(name),
                        edgecolor="black", linewidth=0.5, **kwargs)
        if kwargs and i == 0:
            fig.colorbar(sc, ax=ax, label=color_by)
        fit = fit_logistic(part["asr"], part["acc"])
        fits[name] = fit
        if fit is not None:
            xs = np.linspace(0, 1, 200)
            ax.plot(xs * 100, fit(xs) * 100, linewidth=1.5, label=f"{name} logistic fit")
    if reference:
        ax.scatter([reference["asr"] * 100], [reference["acc"] * 100], marker="*", s=200, color="red",
                   edgecolor="black", label=reference.get("label", "reference"), zorder=5)
    ax.set_xlabel("ASR (%)")
    ax.set_ylabel("ACC (%)")
    ax.set_xlim(-3, 103)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if not any(f is not None for f in fits.values()):
        ax.text(0.5, 0.02, "no logistic fit: fewer than 4 points or ASR spread < 5 points", transform=ax.transAxes, ha="center",
                fontsize=8, color="gray")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return fits
