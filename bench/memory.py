"""Memory of a real 4-rank run with the paper's 250 M-entry noise table: the table must exist once per
node (MPI-3 shared memory), not once per rank. Target: the ranks together hold under 1.6 GB.

Samples the proportional set size (PSS: shared pages divided among the processes that map them) of every
rank while it trains, and reports the peak of the sum. Prints and writes bench/out/memory.json.

    python bench/memory.py [--ranks 4] [--table 250000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pss_kib(pid: int) -> int:
    """PSS in KiB from /proc/PID/smaps_rollup (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def rank_pids(launcher: int) -> list[int]:
    """Python processes below the launcher (mpiexec -> hydra proxy -> ranks)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        pid, ppid, comm = line.split(None, 2)
        children.setdefault(int(ppid), []).append((int(pid), comm))
    found, todo = [], [launcher]
    while todo:
        for pid, comm in children.get(todo.pop(), []):
            todo.append(pid)
            if comm.startswith("python"):
                found.append(pid)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--table", type=int, default=250_000_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "memory.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="es-mpi-mem-"))
    job = {"env": {"id": "HalfCheetah-v5"}, "policy": {"hidden": [64, 64]},
           "es": {"pairs": 2 * args.ranks, "noise_table_size": args.table},
           "run": {"generations": 2, "eval_every": 0, "checkpoint_every": 100}}
    (work / "job.yaml").write_text(yaml.safe_dump(job))
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [mpiexec, "-n", str(args.ranks), sys.executable, "-m", "es_mpi", "train", str(work / "job.yaml"),
           "--run-dir", str(work / "run")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, peak_each = 0, []
    while proc.poll() is None:
        pids = rank_pids(proc.pid)
        each = [pss_kib(p) for p in pids]
        if sum(each) > peak:
            peak, peak_each = sum(each), each
        time.sleep(0.2)
    output = proc.stdout.read()
    shutil.rmtree(work)
    if proc.returncode != 0:
        sys.exit(f"training failed:\n{output}")
    table_gb = args.table * 4 / 1e9
    result = {"ranks": args.ranks, "table_entries": args.table, "table_gb": table_gb,
              "peak_total_pss_gb": peak * 1024 / 1e9, "peak_per_rank_pss_gb": [k * 1024 / 1e9 for k in peak_each],
              "target_gb": 1.6, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"{args.ranks} ranks, noise table {table_gb:.2f} GB: peak total PSS {result['peak_total_pss_gb']:.2f} GB "
          f"(per rank {', '.join(f'{g:.2f}' for g in result['peak_per_rank_pss_gb'])}); target < 1.6 GB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
