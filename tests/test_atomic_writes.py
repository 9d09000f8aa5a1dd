"""Results files are replaced atomically: readers see the old table or the new one, never part of
one, also while the writer is killed mid-write."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WRITER = '''
import sys
import numpy as np
import pandas as pd
from bdray.sweep.storage import write_parquet_atomic

path, rows = sys.argv[1], 400_000
i = 0
while True:  # rewrite the table forever, each version with its own fill value
    i += 1
    write_parquet_atomic(pd.DataFrame({"version": np.full(rows, i), "x": np.arange(rows, dtype=float)}), path)
    print(i, flush=True)
'''


def test_readers_never_see_a_partial_parquet_even_when_the_writer_is_killed(tmp_path):
    from bdray.sweep.storage import read_parquet

    path = tmp_path / "trials.parquet"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), str(path)], env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "1"  # the first version is in place
        reads, deadline = 0, time.time() + 8
        while time.time() < deadline:
            table = read_parquet(str(path))
            assert len(table) == 400_000 and table["version"].nunique() == 1  # whole, one version
            reads += 1
            if reads == 20:
                os.kill(writer.pid, signal.SIGKILL)  # most likely mid-write: it writes all the time
        assert reads >= 20
    finally:
        writer.kill()
        writer.wait()
    table = read_parquet(str(path))
    assert len(table) == 400_000 and table["version"].nunique() == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".parquet") == ["trials.parquet"]
