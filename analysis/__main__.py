"""``python -m analysis <sweep_dir> [--param student_lr]``: rebuild the trade-off PNG and the
Markdown trials table of a finished sweep from its Parquet files."""
from __future__ import annotations

import argparse

from analysis.report import write_report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", help="<storage_path>/<sweep name>, holding trials.parquet")
    parser.add_argument("--param", action="append", default=[], help="swept config column(s) to show")
    parser.add_argument("--out", default=None, help="output folder (default: <sweep_dir>/report)")
    args = parser.parse_args(argv)
    paths = write_report(args.sweep_dir, params=args.param, out_dir=args.out)
    for p in paths.values():
        print(p)


if __name__ == "__main__":
    main()
