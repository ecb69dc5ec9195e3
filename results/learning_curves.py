"""Learning curves of one or more runs, seeds of one job grouped: `python results/learning_curves.py RUN_DIR...`.

The same figures as `es-mpi report`, without the tables.
"""

import argparse
from pathlib import Path

from es_mpi.reports.plots import file_name, learning_curves
from es_mpi.reports.script import run_script
from es_mpi.reports.summary import group_runs, load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("results/report"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    groups = group_runs([load_run(d) for d in args.run_dirs])
    for task in dict.fromkeys(g.env_id for g in groups):
        print(learning_curves([g for g in groups if g.env_id == task], task, args.out / file_name(task)))


run_script(main)
