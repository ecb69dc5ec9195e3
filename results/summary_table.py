"""The summary table of runs as Markdown (or CSV with --csv) on stdout: `python results/summary_table.py RUN_DIR...`."""

import argparse
from pathlib import Path

from es_mpi.commands.report import parse_thresholds
from es_mpi.reports.script import run_script
from es_mpi.reports.summary import group_runs, load_run, summary_rows, to_csv, to_markdown


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--threshold", dest="thresholds", action="append", default=[], metavar="ENV_ID=RETURN")
    p.add_argument("--csv", action="store_true", help="CSV instead of Markdown")
    args = p.parse_args()
    rows = summary_rows(group_runs([load_run(d) for d in args.run_dirs]), parse_thresholds(args.thresholds))
    print((to_csv if args.csv else to_markdown)(rows), end="")


run_script(main)
