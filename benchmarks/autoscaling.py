"""Autoscaling and spot preemption on a local autoscaling cluster shaped like cluster/aws.yaml.

Runs ``tests/test_autoscaling.py`` (the real autoscaler launching and removing worker nodes for a
submitted sweep; worker nodes killed whole while they build the attack artifact and while they train
a trial; results on an S3 server on loopback) ``--repeats`` times and collects the numbers each run
prints, in its full version (``BDRAY_AUTOSCALING_FULL=1``: the main job's trials as Ray Train
runs, a 16-epoch preempted trial; CI runs them reduced): nodes launched / removed, time from the request to a running worker, time from a node kill
to the resumed trial's next report, trials lost.  Run it alone: it starts many Ray processes.

    python benchmarks/autoscaling.py
    python benchmarks/autoscaling.py --repeats 3
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse(output: str, tag: str) -> dict:
    match = re.search(rf"^{tag} (.*)$", output, flags=re.M)
    if not match:
        return {}
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", match.group(1))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = []
    for run in range(1, args.repeats + 1):
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               "tests/test_autoscaling.py"], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "BDRAY_AUTOSCALING_FULL": "1"})
        wall = time.time() - t0
        out = proc.stdout + proc.stderr
        row = {"run": run, "passed": proc.returncode == 0, "wall_s": round(wall, 1),
               **{f"scale_{k}": v for k, v in parse(out, "AUTOSCALING").items()},
               **{f"preempt_{k}": v for k, v in parse(out, "PREEMPTION").items()}}
        if proc.returncode != 0:
            print(out[-4000:])
        rows.append(row)
        print_table([row])
    keys = ["scale_submit_to_first_worker_s", "scale_job_end_to_all_removed_s",
            "preempt_sweep_start_to_build_running_s", "preempt_kill_to_next_report_s"]
    summary = {k: statistics.median(r[k] for r in rows if k in r) for k in keys if any(k in r for r in rows)}
    summary["runs_passed"] = sum(r["passed"] for r in rows)
    summary["trials_lost"] = sum(r.get("scale_trials_lost", 0) + r.get("preempt_trials_lost", 0) for r in rows)
    print(summary)
    write_result("autoscaling", rows, summary, args.out)


if __name__ == "__main__":
    main()
