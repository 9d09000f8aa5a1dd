"""How every sweep script ends: run its sweeps, print the table, rebuild the report folder.

Here, above both the library (``bdray``) and the analysis package, because it uses both: the
library itself never imports ``analysis``."""
from __future__ import annotations

import functools
import sys

from bdray.config import ConfigError


def cli_errors(main):
    """Wrap a sweep script's ``main``: bad input -- an unknown attack, a rate outside [0, 1], a
    missing data file, reversed search bounds: every ``ConfigError``, raised while the configs are
    built and validated, before any Ray work -- prints one ``error: ...`` line naming the field,
    the value and what is allowed, and returns 2, as argparse does for its own errors.  A sweep
    interrupted by Ctrl-C says how to resume it and returns 130 (the shell's code for SIGINT)."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        from bdray.sweep import SweepInterrupted

        try:
            return main(argv)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except SweepInterrupted as stop:  # Ctrl-C: Tune saved the run; say how to continue it
            print(f"\n[bdray] {stop}", file=sys.stderr)
            return 130
    return wrapped



def run_all(sweeps, params) -> int:
    """Validate every sweep (before any Ray work), run them in order, then report on the folder."""
    from bdray.sweep.runner import run_sweep

    for sweep in sweeps:
        sweep.validate()
    for sweep in sweeps:  # what will run, before any training: a wrong choice shows in the first second
        print(sweep.describe(), flush=True)
    return finish(sweeps[0].root, [run_sweep(s) for s in sweeps], params=params)


def finish(sweep_root: str, results, params) -> int:
    """Print the final table, rebuild the report folder, name the best configurations (on what the
    search optimised) and the report page, and return the exit code."""
    import pandas as pd

    from analysis.report import write_report
    from analysis.summary import summary_lines
    from analysis.tables import trials_table

    trials = pd.concat([r.trials for r in results], ignore_index=True) if results else pd.DataFrame()
    print("\n=== trials of this run ===")
    if len(trials):
        shown = trials_table(trials, params=["method", *params])
        print(shown.loc[:, shown.notna().any()].to_string(index=False))  # no all-empty metric columns
    paths = write_report(sweep_root, params=params)
    print(f"\n{len(trials)} trials this run; results under {sweep_root}")
    for name, path in paths.items():
        print(f"{name}: {path}")
    if results:
        everything = results[-1].all_trials  # the folder's table after the last append: every sweep's rows
        print()
        for line in summary_lines(everything, results[0].sweep.objectives, params) or ["no finished trial to rank"]:
            print(line)
    if "index_html" in paths:
        print(f"report page: {paths['index_html']}")
    failed = trials[trials["status"] != "TERMINATED"] if len(trials) else trials
    return 1 if len(failed) else 0
