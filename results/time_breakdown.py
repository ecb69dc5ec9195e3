"""Where each run's generations spend their time: `python results/time_breakdown.py RUN_DIR...`."""

import argparse
from pathlib import Path

from es_mpi.reports.plots import time_breakdown
from es_mpi.reports.script import run_script
from es_mpi.reports.summary import group_runs, load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("results/report/time_breakdown.png"))
    args = p.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(time_breakdown(group_runs([load_run(d) for d in args.run_dirs]), args.out))


run_script(main)
