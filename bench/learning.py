"""Timesteps and wall time for a job to reach an evaluation return threshold, over seeds.

Each seed is an ordinary training run (`mpiexec -n RANKS es-mpi train JOB --set run.seed=N --resume auto`)
in OUT/<job file name>-seed<N>, so an interrupted benchmark resumes where it stopped and the runs can be
reported on like any other. The script watches the run's metrics.h5 and stops it with SIGUSR1 (the ranks
finish the generation and checkpoint) once an evaluation return reaches the threshold (default: the env's
gymnasium reward_threshold, its "solved") or once the run's training wall time (metrics' wall_s, summed
over restarts) has used the per-seed budget. Reported per seed: the training timesteps and wall time at the
first evaluation at or above the threshold, or else the best evaluation within the budget; and the median
over seeds (a seed that missed counts as slower than any that reached). Prints a table, writes JSON
(default bench/out/learning.json) and its table to docs/benchmarks.md under its own heading.

    python bench/learning.py [--jobs jobs/lunar_lander.yaml jobs/bipedal_walker.yaml] [--seeds 0 1 2]
                             [--budget-min 60 [60]] [--ranks 2] [--out results/runs]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

from es_mpi.reports.summary import evaluation_axes, first_reaching
from es_mpi.runs.job import load_job
from es_mpi.runs.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Learning: time to gymnasium's reward threshold"
POLL_S = 5.0
STOP_GRACE_S = 300.0  # a generation and a checkpoint after SIGUSR1; longer means a hung run


@dataclass
class Seed:
    """One seed's outcome, read from its metrics.h5."""
    seed: int
    reached: bool
    timesteps: int  # at the first evaluation >= threshold, else at the best evaluation
    wall_s: float  # training wall time at that evaluation
    best_return: float  # best evaluation return within the budget
    generations: int  # generations run in all
    total_timesteps: int
    total_wall_s: float


def within(metrics: dict[str, np.ndarray], budget_s: float) -> dict[str, np.ndarray]:
    """The metrics with every evaluation of a row past `budget_s` of training blanked (NaN)."""
    return {**metrics, "eval_return": np.where(metrics["wall_s"] <= budget_s, metrics["eval_return"], np.nan)}


def read_seed(run_dir: Path, seed: int, threshold: float, budget_s: float) -> Seed | None:
    """The outcome so far, counting only generations within the budget; None before the first row."""
    if not (run_dir / "metrics.h5").exists():
        return None
    m = read_metrics(run_dir)
    steps, wall = m["timesteps"], m["wall_s"]
    if not len(wall):
        return None
    evals = within(m, budget_s)
    if not np.isfinite(evals["eval_return"]).any():
        return Seed(seed, False, 0, 0.0, math.nan, len(wall), int(steps[-1]), float(wall[-1]))
    # an evaluation scores the parameters before its generation: the steps and time they had spent
    axes = evaluation_axes(m)
    hit = first_reaching(evals, threshold)
    best = int(np.nanargmax(evals["eval_return"]))
    at = best if hit is None else hit
    return Seed(seed, hit is not None, int(axes["eval_timesteps"][at]), float(axes["eval_wall_s"][at]),
                float(evals["eval_return"][best]), len(wall), int(steps[-1]), float(wall[-1]))


def finished(run_dir: Path, generations: int, timesteps: int | None) -> bool:
    """The run used its own budget (run.generations or run.timesteps), so training more is not possible."""
    checkpoint = run_dir / "checkpoint.h5"
    if not checkpoint.exists():
        return False
    with h5py.File(checkpoint, "r") as f:
        done, steps = int(f.attrs["generation"]), int(f.attrs["timesteps"])
    return done >= generations or (timesteps is not None and steps >= timesteps)


def train_seed(job: Path, seed: int, run_dir: Path, ranks: int, threshold: float, budget_s: float,
               overrides: list[str]) -> Seed:
    """Train (or resume) one seed until it reaches the threshold or its budget, then read its outcome."""
    spec = load_job(job, [*overrides, f"run.seed={seed}"])
    outcome = read_seed(run_dir, seed, threshold, budget_s)
    if outcome is not None and (outcome.reached or outcome.total_wall_s >= budget_s
                                or finished(run_dir, spec.run.generations, spec.run.timesteps)):
        print(f"  seed {seed}: already done in {run_dir}")
        return outcome
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if mpiexec is None:
        sys.exit("no mpiexec on PATH (install the mpich extra)")
    argv = [mpiexec, "-n", str(ranks), sys.executable, "-m", "es_mpi", "train", str(job), "--run-dir",
            str(run_dir), "--resume", "auto", "--set", f"run.seed={seed}"]
    for item in overrides:
        argv += ["--set", item]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = (run_dir.parent / f"{run_dir.name}.log").open("a")
    print(f"  seed {seed}: training in {run_dir} (log {log.name})", flush=True)
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stopped_at = None
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            outcome = read_seed(run_dir, seed, threshold, budget_s)
            over = outcome is not None and (outcome.reached or outcome.total_wall_s >= budget_s)
            if over and stopped_at is None:
                proc.send_signal(signal.SIGUSR1)  # mpiexec forwards it: finish the generation, checkpoint
                stopped_at = time.monotonic()
            if stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE_S:
                os.killpg(proc.pid, signal.SIGKILL)
                sys.exit(f"{run_dir}: still running {STOP_GRACE_S:.0f} s after SIGUSR1")
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        log.close()
    outcome = read_seed(run_dir, seed, threshold, budget_s)
    if proc.returncode not in (0, 3) or outcome is None:
        sys.exit(f"{run_dir}: es-mpi train exited {proc.returncode}; see {log.name}")
    return outcome


def median(values: list[float | None]) -> float | None:
    """Median where None (not reached) counts as slower than any figure; None when the median is such."""
    m = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(m) else m


def median_row(seeds: list[Seed]) -> dict:
    """Medians over seeds; a seed that missed the threshold counts as slower than every seed that reached."""
    return {"reached": sum(s.reached for s in seeds), "seeds": len(seeds),
            "timesteps": median([s.timesteps if s.reached else None for s in seeds]),
            "wall_s": median([s.wall_s if s.reached else None for s in seeds]),
            "best_return": statistics.median(s.best_return for s in seeds)}


def table(results: list[dict]) -> list[str]:
    """Markdown rows: per seed, then the median, for each job (named on its first row)."""
    def steps(v):
        return "-" if v is None else f"{v / 1e6:.2f} M"

    def wall(v):
        return "-" if v is None else f"{v:.0f} s" if v < 120 else f"{v / 60:.1f} min"

    rows = ["| job | seed | reached | timesteps | wall time | best evaluation | run in all |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        name = f"`{r['job']}` ({r['env_id']}, threshold {r['threshold']:g}, {r['budget_min']:g} min per seed)"
        for s in r["seeds"]:
            ok = s["reached"]
            rows.append(f"| {name} | {s['seed']} | {'yes' if ok else 'no'} | {steps(s['timesteps']) if ok else '-'} | "
                        f"{wall(s['wall_s']) if ok else '-'} | {s['best_return']:.1f} | "
                        f"{steps(s['total_timesteps'])}, {wall(s['total_wall_s'])} |")
            name = ""
        m = r["median"]
        rows.append(f"| | median | {m['reached']}/{m['seeds']} | {steps(m['timesteps'])} | {wall(m['wall_s'])} | "
                    f"{m['best_return']:.1f} | |")
    return rows


def write_section(doc: Path, heading: str, results: list[dict], ranks: int, note: str) -> None:
    """Replace (or append) the section `heading` of docs/benchmarks.md; the rest stays as it is."""
    intro = (f"`bench/learning.py` on {time.strftime('%Y-%m-%d')}: {ranks} ranks on a {os.cpu_count()}-core "
             f"{platform.machine()} machine, one seed at a time. Timesteps and wall time are the training env "
             "steps and training time the evaluated parameters had spent (metrics.h5 `eval_timesteps`, "
             "`eval_wall_s`) at the first evaluation whose mean return reaches the threshold. Best "
             "evaluation: the highest within the budget (after the threshold too: a run stops at the end "
             "of the generation after the one that reached it). A seed that missed "
             "counts as slower than any that reached in the median.")
    lines = [heading, "", textwrap.fill(intro, 110), "", *table(results), ""]
    if note:
        lines += [textwrap.fill(note, 110), ""]
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    else:
        end = text.find("\n## ", start + len(heading))
        rest = "" if end < 0 else text[end + 1:]
        text = text[:start] + "\n".join(lines) + ("\n" + rest if rest else "")
    doc.write_text(text, encoding="utf-8")


def per_job(values: list, jobs: list[str], flag: str) -> list:
    """One value for every job, or one per job."""
    if len(values) not in (1, len(jobs)):
        sys.exit(f"{flag}: give one value or one per job ({len(jobs)}), not {len(values)}")
    return values * len(jobs) if len(values) == 1 else values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", nargs="+", default=["jobs/lunar_lander.yaml", "jobs/bipedal_walker.yaml"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget-min", type=float, nargs="+", default=[60.0],
                    help="training wall time per seed, minutes: one for every job or one per job")
    ap.add_argument("--threshold", type=float, nargs="+",
                    help="evaluation return to reach, one for every job or one per job (default: gymnasium's)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="job override, repeatable")
    ap.add_argument("--out", default=str(ROOT / "results" / "runs"), help="parent of the run directories")
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "learning.json"))
    ap.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"), help="'' to leave the docs alone")
    ap.add_argument("--note", default="", help="a paragraph under the table: conditions, what fell short")
    ap.add_argument("--heading", default=HEADING, help="the section of --docs to write (replaced if present)")
    args = ap.parse_args()
    budgets = per_job(args.budget_min, args.jobs, "--budget-min")
    thresholds = per_job(args.threshold or [None], args.jobs, "--threshold")
    results = []
    for name, budget_min, given in zip(args.jobs, budgets, thresholds):
        job = Path(name) if Path(name).is_absolute() else ROOT / name
        env_id = load_job(job, args.set).env.id
        threshold = given if given is not None else gym.spec(env_id).reward_threshold
        if threshold is None:
            sys.exit(f"{env_id} has no gymnasium reward_threshold; pass --threshold")
        print(f"{job.name}: {env_id}, threshold {threshold:g}, {budget_min:g} min per seed", flush=True)
        seeds = [train_seed(job, s, Path(args.out) / f"{job.stem}-seed{s}", args.ranks, threshold,
                            budget_min * 60, args.set) for s in args.seeds]
        results.append({"job": f"jobs/{job.name}", "env_id": env_id, "threshold": threshold,
                        "budget_min": budget_min, "overrides": args.set,
                        "seeds": [asdict(s) for s in seeds], "median": median_row(seeds)})
    print("\n".join(table(results)))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "ranks": args.ranks,
                               "cpus": os.cpu_count(), "note": args.note, "results": results}, indent=2))
    print(f"wrote {out}")
    if args.docs:
        write_section(Path(args.docs), args.heading, results, args.ranks, args.note)
        print(f"wrote the section '{args.heading[3:]}' of {args.docs}")


if __name__ == "__main__":
    main()
