"""Which Tune experiments of a sweep started and which finished: a run still marked "running" (the
driver was killed) or "interrupted" (Ctrl-C) when the same sweep starts again is resumed."""
from __future__ import annotations

import datetime as dt
import json
from typing import Optional

from bdray.sweep import storage as S
from bdray.sweep.spec import Sweep


def _run_marker(sweep: Sweep, tune_run: str) -> str:
    return S.join(sweep.root, "runs", f"{tune_run}.json")


def mark_run(sweep: Sweep, tune_run: str, status: str) -> None:
    """``<sweep>/runs/<tune run>.json``: which Tune experiments of this sweep finished; a run still
    marked "running" when the same sweep starts again was interrupted and is resumed."""
    record = {"tune_run": tune_run, "method": sweep.method, "status": status,
              "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    S.write_text_atomic(_run_marker(sweep, tune_run), json.dumps(record))


def unfinished_run(sweep: Sweep) -> Optional[str]:
    """The latest Tune experiment of this sweep and method that started and never finished (killed
or interrupted)."""
    runs = []
    for path in S.list_files(S.join(sweep.root, "runs"), suffix=".json"):
        record = json.loads(S.read_text(path))
        if record.get("method") == sweep.method and record.get("status") in ("running", "interrupted"):
            runs.append(record["tune_run"])
    return max(runs) if runs else None  # names end in a timestamp
