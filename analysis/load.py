"""Load a sweep's tables into pandas."""
from __future__ import annotations

import pandas as pd

from bdray.sweep import storage as S


def load_trials(sweep_dir: str, finished_only: bool = False) -> pd.DataFrame:
    df = S.read_parquet(S.join(sweep_dir, "trials.parquet"))
    if finished_only:
        df = df[df["status"] == "TERMINATED"]
    return df.reset_index(drop=True)


def load_epochs(sweep_dir: str) -> pd.DataFrame:
    return S.read_parquet(S.join(sweep_dir, "epochs.parquet"))
