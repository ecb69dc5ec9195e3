"""Time ranks spend waiting for the slowest one: static against dynamic assignment (without and with the
hand-over of episodes in flight between the ranks of a node, and with every rank its own node, so that
the task counter and every hand-over go through rank 0 as across nodes), one episode at a time against 8
lockstep simulations per rank, in the same run.

Episodes differ in length (a falling Hopper ends early), so a static split leaves ranks idle at the
allgather. Runs the same Hopper-v5 job under `mpiexec -n RANKS` once per combination and reports the
share of all ranks' time spent waiting (target: under 5% with dynamic assignment on 4 ranks) and the
total wall time. Results (theta) must be identical; the script checks. Next to them, the floor no
assignment can beat: a generation cannot end before its longest episode (metrics' length_max), so with
T steps over p ranks at least p * max(T / p, longest) - T rank-steps are spent waiting, priced at the
run's measured seconds per step. Each share is given over the whole run and over its first EARLY
generations: a fresh Hopper's first generations mix ~20-step episodes with the odd 1,000-step one, which
alone sets the generation's length (and runs at a lone episode's speed, slower per step than the price
the floor uses), so their waiting is far above a longer run's. Prints and writes bench/out/stragglers.json.

    python bench/stragglers.py [--ranks 4] [--generations 20] [--pairs 50]
"""

from __future__ import annotations

from es_mpi.parallel.threads import pin_blas_threads

pin_blas_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# static split; dynamic assignment without, then with, the hand-over of episodes in flight (the default);
# the default with each rank a node of its own (ES_MPI_NODE_RANKS=1: the cross-node counter and hand-over)
MODES = ("static", "dynamic-no-handover", "dynamic", "dynamic-across-nodes")
EARLY = 8  # generations from scratch reported on their own


def worker(mode: str, slots: int, generations: int, pairs: int, cap: str) -> None:
    """Under mpiexec: train with the given assignment; rank 0 prints one JSON line."""
    from es_mpi.engine.context import build_context
    from es_mpi.engine.loop import Rows, train
    from es_mpi.engine.signals import StopFlag
    from es_mpi.envs.make import make_env
    from es_mpi.parallel.comm import get_comm
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import load_job
    from es_mpi.runs.state import initial_state

    comm = get_comm()
    job = load_job(ROOT / "jobs" / "hopper.yaml", [f"es.pairs={pairs}", "es.noise_table_size=20000000",
                                                   f"run.generations={generations}", "run.eval_every=0",
                                                   f"env.episode_cap={cap}"])
    env, limit = make_env(job.env)
    policy = make_policy(job.policy, env)
    ctx = build_context(job, comm, env, limit, policy, dynamic=(mode != "static"), slots=slots,
                        hand_over=(mode != "dynamic-no-handover"))
    writer = Rows()
    rows = writer.rows
    _, state = train(ctx, initial_state(ctx.strategy), writer if comm.rank == 0 else None, StopFlag())
    if comm.rank == 0:
        theta = ctx.strategy.bases(state.strategy)[0]  # the trained parameters
        times = np.array([r["rank_times"] for r in rows])  # generation x rank x (rollout, wait, comm, update)
        steps = np.array([2 * pairs * r["length_mean"] for r in rows])
        span = np.maximum(steps / comm.size, [r["length_max"] for r in rows])
        floor_s = (comm.size * span - steps) * times[..., 0].sum(axis=1) / steps  # least waiting, seconds

        def shares(n: int) -> dict:
            t, f = times[:n], floor_s[:n]
            return {"wait_share": float(t[..., 1].sum() / t.sum()),
                    "wait_floor_share": float(f.sum() / (t.sum() - t[..., 1].sum() + f.sum()))}

        print(json.dumps({
            "mode": mode, "slots": slots, "episode_cap": cap, **shares(len(rows)), "early": shares(EARLY),
            "total_s": float(sum(r["generation_s"] for r in rows)),
            "wait_share_per_generation": (times[..., 1].sum(axis=1) / times.sum(axis=(1, 2))).tolist(),
            "generation_s": [r["generation_s"] for r in rows], "theta_crc32": zlib.crc32(theta.tobytes()),
            "mean_episode_length": float(np.mean([r["length_mean"] for r in rows])),
            "handovers": int(sum(r["handovers"] for r in rows)),
        }))


def run(mode: str, slots: int, ranks: int, generations: int, pairs: int, cap: str) -> dict:
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", mode, "--slots", str(slots),
           "--generations", str(generations), "--pairs", str(pairs), "--cap", cap]
    env = dict(os.environ, ES_MPI_NODE_RANKS="1") if mode == "dynamic-across-nodes" else None
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--worker", choices=MODES)
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 8], help="lockstep simulations per rank")
    ap.add_argument("--cap", choices=["env", "mean"], default="env", help="env.episode_cap of the job")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "stragglers.json"))
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.slots[0], args.generations, args.pairs, args.cap)
        return
    results = [run(mode, k, args.ranks, args.generations, args.pairs, args.cap) for k in args.slots
               for mode in MODES]
    if len({r["theta_crc32"] for r in results}) != 1:
        sys.exit("the assignments gave different parameters")
    print(f"Hopper-v5, {args.ranks} ranks ({os.cpu_count()} cores), {args.pairs} pairs, "
          f"{args.generations} generations, episode cap {args.cap}")
    early = min(EARLY, args.generations)
    for r in results:
        print(f"{r['mode']:>20}, {r['slots']} slot(s): waiting {r['wait_share']:6.1%} of rank time "
              f"(no assignment below {r['wait_floor_share']:.1%}; first {early} generations "
              f"{r['early']['wait_share']:.1%}, floor {r['early']['wait_floor_share']:.1%}), "
              f"total {r['total_s']:.2f} s, {r['handovers']} episodes handed over")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "ranks": args.ranks,
                               "cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
