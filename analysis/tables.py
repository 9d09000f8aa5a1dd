"""Tables as pandas frames and Markdown."""
from __future__ import annotations

import math
from typing import Iterable, Optional

import pandas as pd

METRIC_COLUMNS = ("acc", "asr", "asr_cond", "ra", "asr_x4", "asr_x9")


def trials_table(trials: pd.DataFrame, params: Iterable[str] = (), metrics: Iterable[str] = METRIC_COLUMNS,
                 sort_by: Optional[str] = "asr") -> pd.DataFrame:
    cols = ["trial_id", *[p for p in params if p in trials], *[m for m in metrics if m in trials],
            *[c for c in ("status", "wall_time_s", "cpu_hours", "gpu_hours") if c in trials]]
    out = trials[cols].copy()
    if sort_by and sort_by in out:
        out = out.sort_values(sort_by, kind="stable")
    return out.reset_index(drop=True)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
