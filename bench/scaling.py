"""Measured inputs and a stated model for the parallel efficiency of a paper-scale Humanoid run.

A 2-core machine cannot run 1,440 ranks, so this script measures the three things a generation is made of
and projects the rest with a model whose every term is printed:

1. the per-generation collective (`MpiComm.gather_blocks`, the trainer's exact call) with the trainer's real
   payload (one row per episode of the job's pairs and evaluation episodes), under `mpiexec -n p`
   for p = 2..32 (oversubscribed: upper bounds), fitted as latency = a + b*log2(p);
2. the update at paper scale (centered ranks, the weighted noise sum over every pair's noise slice of the
   Humanoid MLP, Adam), in full and on the 1/18 coordinate slice a node's ranks would each do;
3. real Humanoid-v5 episode CPU times (perturbed initial parameters, as early in training; and a
   late-training proxy of full 1,000-step episodes), from which Monte-Carlo simulations give the
   straggler wait under four assignments: static pairs (baseline), node-dynamic episodes, cluster-wide
   dynamic episodes one at a time, and es-mpi's default across nodes (cluster-wide dynamic episodes in
   lockstep slots, handed over in flight to waiting ranks of any node), the last event by event.

Model: T(p) = T_work + T_eval + T_wait + T_comm + T_update, T_work = N * mean pair time / p,
E(p) = T_work / T(p). The run's figures come from jobs/humanoid.yaml; the parts live in bench/humanoid_scaling/.

Prints tables, writes JSON (bench/out/scaling.json) and the docs section (bench/out/scaling-section.md, and
into docs/scaling.md between its marker comments); --quick writes bench/out/scaling-quick.json and
bench/out/scaling-section-quick.md only.

    python bench/scaling.py [--quick] [--reproject bench/out/scaling.json]
"""

from __future__ import annotations

from es_mpi.parallel.threads import pin_blas_threads

pin_blas_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from humanoid_scaling.conclusion import conclusion  # noqa: E402
from humanoid_scaling.figures import ROOT  # noqa: E402
from humanoid_scaling.measure_mpi import gather_worker, grab_worker  # noqa: E402
from humanoid_scaling.measurements import measure, reload  # noqa: E402
from humanoid_scaling.project import project_all  # noqa: E402
from humanoid_scaling.section import DOC, place_section, section  # noqa: E402
from humanoid_scaling.tables import projection_table, reference_table, sweep_table  # noqa: E402

OUT = ROOT / "bench" / "out"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and episodes (about 2 minutes)")
    ap.add_argument("--out", default=None, help="default bench/out/scaling.json (scaling-quick.json with --quick)")
    ap.add_argument("--markdown", default=None, help="default bench/out/scaling-section.md "
                    "(bench/out/scaling-section-quick.md with --quick)")
    ap.add_argument("--docs", default=None, help="default docs/scaling.md: the file whose part between the marker "
                    "comments a full run (not --quick) replaces with the section")
    ap.add_argument("--reproject", metavar="JSON", default=None, help="recompute the model from the measurements "
                    "saved in JSON (an earlier run's output) instead of measuring; the date stays the measurements'")
    ap.add_argument("--gather-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--grab-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=8.0, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=10, help=argparse.SUPPRESS)
    return ap.parse_args()


def print_results(res: dict) -> None:
    fit = res["gather"]["fit"]["realistic"]
    print(f"\nallgather fit: {fit['a_s'] * 1e3:.3f} ms + {fit['b_s_per_log2p'] * 1e3:.3f} ms * log2(p), "
          f"R^2 {fit['r2']:.3f} (oversubscribed on {os.cpu_count()} cores: upper bound)")
    for name, rows in res["projection"].items():
        print(f"\n{name}\n{projection_table(rows)}")
    print(f"\n{reference_table(res)}\n\n{sweep_table(res)}")
    print("\n" + res["conclusion"])


def main() -> None:
    args = parse_args()
    if args.gather_worker:  # under mpiexec, launched by measure_mpi
        gather_worker(args.repeats, args.warmup)
        return
    if args.grab_worker:
        grab_worker(args.seconds)
        return

    m = reload(Path(args.reproject)) if args.reproject else measure(args.quick)
    res = project_all(m.meta, m.mc_reps, m.gather, m.update, m.early, m.late, m.mixed_full_fraction)
    res["conclusion"] = conclusion(res)
    res["meta"].setdefault("wall_s", time.perf_counter() - m.started)  # a reprojection keeps the measuring time
    if not args.reproject:
        res["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    print_results(res)
    out = Path(args.out or OUT / ("scaling-quick.json" if m.quick else "scaling.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    md = Path(args.markdown or OUT / ("scaling-section-quick.md" if m.quick else "scaling-section.md"))
    md.parent.mkdir(parents=True, exist_ok=True)
    text = section(res)
    md.write_text(text)
    print(f"\nwrote {out} and {md} in {res['meta']['wall_s']:.0f} s")
    docs = Path(args.docs) if args.docs else DOC
    if not m.quick and place_section(text, docs):  # quick figures are not for the docs
        print(f"set the section into {docs}")


if __name__ == "__main__":
    main()
