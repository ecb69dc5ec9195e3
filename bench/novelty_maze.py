"""OpenAI-ES against NS-ES, NSR-ES and NSRA-ES on the deceptive U-maze (jobs/maze_*.yaml), at an equal
budget of training timesteps, over seeds; and the cost of novelty (k-NN against the archive) per generation.

Each (method, seed) is an ordinary run directory trained with `mpiexec -n RANKS es-mpi train` (an
interrupted benchmark picks up with --resume auto). A run's result is its final policy (vector 0: for the
novelty methods the agent with the best measured return) played once without noise from a fixed seed: its
final distance to the goal, and whether that is within the maze's success radius (0.45, gymnasium-robotics'
own). For the novelty methods the archive also tells whether any agent ever ended an episode at the goal.
The novelty cost is the update's time on the archive and nearest neighbours (metrics.h5 novelty_s) against
the rollout time, at the archive sizes the runs reached, and timed here for an archive of 10,000 entries.
Prints tables and writes JSON (default bench/out/novelty_maze.json).

    python bench/novelty_maze.py [--seeds 0 1 2 3 4] [--timesteps 450000] [--ranks 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("openai_es", "ns_es", "nsr_es", "nsra_es")
SUCCESS_RADIUS = 0.45  # gymnasium-robotics maze: goal reached within this distance
EVAL_SEED = 12345


def train(method: str, seed: int, timesteps: int, ranks: int, out: Path) -> Path:
    run_dir = out / f"{method}_seed{seed}"
    mpiexec = Path(sys.executable).parent / "mpiexec"
    job = ROOT / "jobs" / f"maze_{method}.yaml"
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "es_mpi", "train", str(job),
           "--run-dir", str(run_dir), "--resume", "auto", "--set", f"run.seed={seed}",
           "--set", f"run.timesteps={timesteps}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{method} seed {seed} failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")
    return run_dir


def final_distance(run_dir: Path) -> float:
    """Final distance to the goal of the run's policy, one noiseless episode from EVAL_SEED."""
    from es_mpi import load_policy
    from es_mpi.envs.behaviour import final_xy

    trained = load_policy(run_dir)
    env, limit = trained.make_env()
    obs, _ = env.reset(seed=EVAL_SEED)
    bound = trained.policy.bind(trained.theta)
    for _ in range(limit):
        obs, *_ = env.step(trained.policy.act(bound, obs))
    return float(np.linalg.norm(final_xy(env, obs) - env.unwrapped.goal))


def summarise(method: str, seed: int, run_dir: Path) -> dict:
    with h5py.File(run_dir / "metrics.h5") as f:
        row = {"seed": seed, "generations": int(f["generation"][-1]) + 1, "timesteps": int(f["timesteps"][-1]),
               "rollout_s": float(np.mean(f["rollout_s"][...])), "wall_s": float(f["wall_s"][-1])}
        if "novelty_s" in f:
            row["novelty_s"] = float(np.mean(f["novelty_s"][1:]))
            row["archive_size"] = int(f["archive_size"][-1])
        if method == "nsra_es":  # how far the weight on reward came down, and where it ended
            weight = f["reward_weight"][1:]
            row["weight_min"], row["weight_final"] = float(weight.min()), float(weight[-1])
    row["final_distance"] = final_distance(run_dir)
    row["reached"] = row["final_distance"] < SUCCESS_RADIUS
    if method != "openai_es":
        with h5py.File(run_dir / "checkpoint.h5") as f:
            goal = _goal(run_dir)
            closest = np.linalg.norm(f["archive/behaviour"][...] - goal, axis=1).min()
        row["archive_closest"] = float(closest)
        row["archive_reached"] = bool(closest < SUCCESS_RADIUS)
    return row


def _goal(run_dir: Path) -> np.ndarray:
    from es_mpi import load_policy

    env, _ = load_policy(run_dir).make_env()
    env.reset(seed=EVAL_SEED)
    return np.array(env.unwrapped.goal)


def knn_cost(archive_size: int, queries: int, repeats: int = 5) -> float:
    """Median seconds of one generation's novelty: `queries` BCs against an archive of `archive_size`."""
    from es_mpi.core.archive import novelty

    rng = np.random.default_rng(0)
    archive, points = rng.uniform(-1.5, 1.5, (archive_size, 2)), rng.uniform(-1.5, 1.5, (queries, 2))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        novelty(points, archive, 10)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--timesteps", type=int, default=450_000, help="training timesteps per run")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=ROOT / "bench" / "out" / "novelty_maze")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "novelty_maze.json")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    for method in args.methods:
        for seed in args.seeds:
            run_dir = train(method, seed, args.timesteps, args.ranks, args.runs)
            rows.setdefault(method, []).append(summarise(method, seed, run_dir))
            r = rows[method][-1]
            print(f"{method:>10} seed {seed}: final distance {r['final_distance']:.2f}"
                  f"{' (goal)' if r['reached'] else ''}, {r['generations']} generations"
                  + (f", reward weight min {r['weight_min']:.2f} final {r['weight_final']:.2f}"
                     if "weight_min" in r else ""), flush=True)
    print(f"\nDeceptive U-maze, {args.timesteps:,} training timesteps per run, {len(args.seeds)} seeds, "
          f"{args.ranks} ranks")
    print(f"{'method':>10} | reached goal | median final distance | archive reached goal | generations")
    summary = {}
    for method, runs in rows.items():
        reached = sum(r["reached"] for r in runs)
        median = float(np.median([r["final_distance"] for r in runs]))
        archive = sum(r.get("archive_reached", False) for r in runs) if method != "openai_es" else None
        summary[method] = {"reached": reached, "runs": len(runs), "median_final_distance": median,
                           "archive_reached": archive}
        print(f"{method:>10} | {reached:>5} of {len(runs):<4} | {median:21.2f} | "
              f"{'-' if archive is None else f'{archive} of {len(runs)}':>20} | "
              f"{int(np.median([r['generations'] for r in runs])):>11}")
    novelty_runs = [r for m, runs in rows.items() if m != "openai_es" for r in runs]
    cost = {}
    if novelty_runs:
        queries = 20  # the maze jobs' 10 pairs
        reached = int(np.median([r["archive_size"] for r in novelty_runs]))
        rollout = float(np.median([r["rollout_s"] for r in novelty_runs]))
        measured = float(np.median([r["novelty_s"] for r in novelty_runs]))
        cost = {"rollout_s": rollout, "novelty_s_in_runs": measured, "archive_size_reached": reached,
                "knn_s": {f"{size}x{q}": knn_cost(size, q)
                          for size in (reached, 10_000) for q in (queries, 1000, 10_000)}}
        print(f"\nNovelty cost per generation (median over novelty runs): {measured * 1e3:.2f} ms of update for "
              f"archive and k-NN against {rollout * 1e3:.0f} ms of rollouts ({measured / rollout:.2%}); archive "
              f"reached {reached} entries")
        print(f"{'archive':>8} | {'queries':>7} | k-NN seconds")
        for name, seconds in cost["knn_s"].items():
            size, q = name.split("x")
            print(f"{int(size):>8} | {int(q):>7} | {seconds:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"timesteps": args.timesteps, "seeds": args.seeds, "ranks": args.ranks,
                                    "host": platform.node(), "cpus": os.cpu_count(), "runs": rows,
                                    "summary": summary, "novelty_cost": cost}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
