"""The detectors' table: TPR / FPR / AUROC (%) against the recorded poison indices, per attack and
poisoning rate (rows) and detector (columns); STRIP's test-time filter beside it. Seed replicas
are averaged."""
from __future__ import annotations

import pandas as pd

COLUMNS = (("detection_tpr", "TPR"), ("detection_fpr", "FPR"), ("detection_auroc", "AUROC"))
STRIP_TEST = (("strip_test_tpr", "test TPR"), ("strip_test_fpr", "test FPR"))


def detection_table(done: pd.DataFrame) -> pd.DataFrame:
    d = done[done["detection_auroc"].notna()] if "detection_auroc" in done else done.iloc[0:0]
    if not len(d):
        return pd.DataFrame()
    keys = ["attack", "backdoor_poison_rate"]
    rows = []
    for (attack, rate), part in d.groupby(keys, sort=True):
        row = {"attack": attack, "poison rate": f"{rate:g}", "undefended ASR": 100 * part["undefended_asr"].mean()}
        for method, m in part.groupby("method", sort=False):
            for col, label in COLUMNS + (STRIP_TEST if method == "strip" else ()):
                if col in m:
                    row[f"{method} {label}"] = 100 * m[col].mean()
        rows.append(row)
    return pd.DataFrame(rows).round(1)
