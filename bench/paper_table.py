"""The paper's MuJoCo table, rerun: timesteps for the shipped job files to reach 25, 50, 75 and 100% of
TRPO's learning progress over 5 M timesteps (Salimans et al. 2017, arXiv 1703.03864, Tables 1 and 3), over seeds.

Protocol: each seed is an ordinary training run of the shipped job file with an evaluation every generation
(3 episodes). A milestone is reached at the first evaluation whose mean return is at or above it; the
timesteps and wall time counted are those the evaluated parameters had trained for (metrics.h5
`eval_timesteps`, `eval_wall_s`: an evaluation scores the parameters before its generation's update). Runs
live in OUT/table1-<job>-seed<N>, the names `sbatch slurm/paper_table.sh` gives them on a cluster, so that an
interrupted benchmark resumes and a cluster's runs are collected the same way. Here a run stops once it
reaches 100% (SIGUSR1: it checkpoints), at its job's timestep budget, or at --budget-min of training time.
Writes bench/out/paper_table.json, the table and figure into docs/learning.md and docs/images/.

    python bench/paper_table.py [--tasks hopper swimmer] [--seeds 0 1 2] [--ranks 2] [--budget-min M]
    python bench/paper_table.py --collect      # table and figure from the runs in OUT; trains nothing
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_mpi.reports.summary import evaluation_axes, first_reaching
from es_mpi.runs.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from learning import median, train_seed, within  # noqa: E402  (bench/ is not a package)

MILESTONES = (0.25, 0.5, 0.75, 1.0)
OVERRIDES = ["run.eval_every=1", "run.eval_episodes=3"]
PREFIX = "table1"  # slurm/paper_table.sh's job name, the first part of its run directories' names


@dataclass(frozen=True)
class Task:
    job: str  # jobs/<job>.yaml
    env_id: str
    scores: tuple[float, ...]  # TRPO's return at each of MILESTONES (Table 3, "TRPO score")
    paper: tuple[float, ...]  # the paper's ES timesteps to each (Table 3, "ES timesteps")

    @property
    def trpo(self) -> float:
        """TRPO's score after 5 M timesteps: the 100% milestone."""
        return self.scores[-1]


# Table 3 of arXiv 1703.03864v2. Its percentages are of TRPO's learning progress over 5 M timesteps, from
# its starting return, not of its final score: HalfCheetah's 25% is a return of -1.35. The ES timesteps come
# from ES learning curves averaged over 6 runs (its caption), not from per-seed medians as here.
TASKS = [Task("inverted_pendulum", "InvertedPendulum-v5", (276.59, 519.15, 753.17, 1000.00),
              (6.25e4, 1.43e5, 2.55e5, 4.55e5)),
         Task("swimmer", "Swimmer-v5", (41.97, 70.73, 99.68, 128.25), (5.88e5, 8.52e5, 1.23e6, 1.39e6)),
         Task("halfcheetah", "HalfCheetah-v5", (-1.35, 793.55, 1589.83, 2385.79), (1.36e5, 8.28e5, 1.42e6, 2.88e6)),
         Task("inverted_double_pendulum", "InvertedDoublePendulum-v5", (2358.98, 4609.68, 6874.03, 9104.07),
              (3.98e5, 4.66e5, 5.30e5, 5.39e6)),
         Task("hopper", "Hopper-v5", (877.45, 1718.16, 2561.11, 3403.46), (3.83e5, 3.73e6, 9.63e6, 3.16e7)),
         Task("walker2d", "Walker2d-v5", (957.68, 1916.48, 2872.81, 3830.03), (6.43e5, 1.29e7, 2.31e7, 3.79e7))]


@dataclass(frozen=True)
class Reached:
    timesteps: int
    wall_s: float


def milestones(metrics: dict[str, np.ndarray], scores: tuple[float, ...],
               budget_s: float = math.inf) -> list[Reached | None]:
    """For each milestone's return: the timesteps and training time of the parameters that first
    evaluated at or above it, counting only evaluations within `budget_s` of training; None if none did."""
    axes, counted = evaluation_axes(metrics), within(metrics, budget_s)
    out = []
    for score in scores:
        row = first_reaching(counted, score)
        out.append(None if row is None else Reached(int(axes["eval_timesteps"][row]), float(axes["eval_wall_s"][row])))
    return out


def run_dir(out: Path, task: Task, seed: int) -> Path:
    return out / f"{PREFIX}-{task.job}-seed{seed}"


def collect(out: Path, task: Task, seeds: list[int], budget_s: float) -> dict | None:
    """The task's row: per seed its milestones, best evaluation and run length; None if no seed has run."""
    found = []
    for seed in seeds:
        path = run_dir(out, task, seed)
        if not (path / "metrics.h5").exists():
            continue
        m = read_metrics(path)
        if not m["wall_s"].size:
            continue
        reached = milestones(m, task.scores, budget_s)
        evals = m["eval_return"][np.isfinite(m["eval_return"])]
        found.append({"seed": seed, "run_dir": str(path),
                      "milestones": [None if r is None else vars(r) for r in reached],
                      "best_eval": float(evals.max()) if evals.size else math.nan,
                      "timesteps": int(m["timesteps"][-1]), "wall_s": float(m["wall_s"][-1])})
    if not found:
        return None
    per = [[s["milestones"][i] for s in found] for i in range(len(MILESTONES))]
    return {"job": f"jobs/{task.job}.yaml", "env_id": task.env_id, "trpo": task.trpo, "scores": task.scores,
            "paper": task.paper,
            "seeds": found,
            "median_timesteps": [median([None if r is None else r["timesteps"] for r in col]) for col in per],
            "median_wall_s": [median([None if r is None else r["wall_s"] for r in col]) for col in per]}


def _steps(v: float | None) -> str:
    return "not reached" if v is None else f"{v / 1e6:.2f} M"


def _wall(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} s" if v < 120 else f"{v / 60:.1f} min"


def short_table(rows: list[dict]) -> list[str]:
    """One line per task at 100%: the table README.md shows."""
    lines = ["| task (v5) | TRPO score | paper's ES timesteps | es-mpi median | seeds reaching | wall time to it |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        hit = sum(s["milestones"][-1] is not None for s in r["seeds"])
        wall = r["median_wall_s"][-1]
        wall = _wall(wall) if wall is not None else f"{_wall(median([s['wall_s'] for s in r['seeds']]))} (whole run)"
        lines.append(f"| {r['env_id'].split('-')[0]} | {r['trpo']:,.0f} | {_steps(r['paper'][-1])} | "
                     f"{_steps(r['median_timesteps'][-1])} | {hit}/{len(r['seeds'])} | {wall} |")
    return lines


def full_table(rows: list[dict]) -> list[str]:
    """Every milestone: its return, the paper's ES timesteps, per seed (timesteps, wall time), the median."""
    lines = ["| task (v5) | milestone | return | paper's ES | es-mpi per seed (timesteps, wall time) | median |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        for i, fraction in enumerate(MILESTONES):
            seeds = ", ".join(f"s{s['seed']}: " + ("-" if s["milestones"][i] is None else
                              f"{_steps(s['milestones'][i]['timesteps'])} ({_wall(s['milestones'][i]['wall_s'])})")
                              for s in r["seeds"])
            lines.append(f"| {r['env_id'].split('-')[0] if i == 0 else ''} | {fraction:.0%} | "
                         f"{r['scores'][i]:,.0f} | {_steps(r['paper'][i])} | {seeds} | "
                         f"{_steps(r['median_timesteps'][i])} |")
        runs = ", ".join(f"s{s['seed']}: best {s['best_eval']:,.0f} in {_steps(s['timesteps'])}, {_wall(s['wall_s'])}"
                         for s in r["seeds"])
        lines.append(f"| | runs | | | {runs} | |")
    return lines


def figure(rows: list[dict], path: Path) -> Path:
    """One panel per task: every seed's evaluation return against its timesteps, the milestones as
    horizontal lines and the paper's ES timesteps to 100% as a vertical one."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8.5), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    for ax, r in zip(axes, rows):
        for k, s in enumerate(r["seeds"]):
            m = read_metrics(Path(s["run_dir"]))
            steps = evaluation_axes(m)["eval_timesteps"]
            keep = np.isfinite(m["eval_return"])
            ax.plot(steps[keep], m["eval_return"][keep], color=f"C{k}", lw=0.8, label=f"seed {s['seed']}")
        for fraction, score in zip(MILESTONES, r["scores"]):
            ax.axhline(score, color="grey", lw=0.6, ls=":" if fraction < 1 else "--")
        ax.axvline(r["paper"][-1], color="black", lw=0.8, ls="--", label="paper's ES to 100%")
        ax.set_title(f"{r['env_id']} (TRPO {r['trpo']:,.0f})")
        ax.set_xlabel("training timesteps of the evaluated parameters")
        ax.set_ylabel("evaluation return (3 episodes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    fig.suptitle("es-mpi against the paper's MuJoCo table (dotted: Table 3's 25/50/75% milestones, dashed: 100%)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def write_doc(doc: Path, rows: list[dict], meta: dict, image: Path | None) -> None:
    """docs/learning.md: how the table was made, the full table and the figure; the text after the
    table (the study) is kept as it is."""
    marker = "<!-- end of the generated table -->"
    head = [
        "# Learning: the paper's MuJoCo table",
        "",
        f"Measured by `python bench/paper_table.py` on {meta['date']}: {meta['ranks']} ranks on a "
        f"{meta['cpus']}-core {meta['machine']} machine, the shipped job files with an evaluation every "
        "generation (3 episodes). Timesteps are those the evaluated parameters had trained on (metrics.h5 "
        "`eval_timesteps`), wall time their training time. A seed that did not reach a milestone counts as "
        "slower than every seed that did. Milestones and the paper's figures are its Table 3 (arXiv "
        "1703.03864v2): percentages of TRPO's learning progress over 5 M timesteps (from its starting "
        "return, so HalfCheetah's 25% is -1.35), the paper's timesteps from learning curves averaged over "
        "6 runs where this table takes per-seed first crossings and their median.",
        "",
        *full_table(rows),
        "",
    ]
    if meta["note"]:
        head += [meta["note"], ""]
    if image is not None:
        head += [f"![evaluation returns against timesteps]({image.relative_to(doc.parent).as_posix()})", ""]
    old = doc.read_text(encoding="utf-8") if doc.exists() else ""
    rest = old[old.index(marker):] if marker in old else marker + "\n"
    doc.write_text("\n".join(head) + rest, encoding="utf-8")


def main() -> None:
    names = [t.job for t in TASKS]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=names, choices=names, metavar="JOB", help=" ".join(names))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--budget-min", type=float, default=math.inf, help="training wall time per run, minutes")
    ap.add_argument("--out", default=str(ROOT / "results" / "runs"), help="parent of the run directories")
    ap.add_argument("--collect", action="store_true", help="only read the runs in OUT: train nothing")
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "paper_table.json"))
    ap.add_argument("--docs", default=str(ROOT / "docs" / "learning.md"), help="'' to leave the docs alone")
    ap.add_argument("--note", default="", help="a paragraph under the table: conditions, what fell short")
    args = ap.parse_args()
    out, budget_s = Path(args.out), args.budget_min * 60
    tasks = [t for t in TASKS if t.job in args.tasks]
    if not args.collect:
        for task in tasks:
            print(f"{task.job}: {task.env_id}, 100% = TRPO's {task.trpo:g}", flush=True)
            for seed in args.seeds:
                train_seed(ROOT / "jobs" / f"{task.job}.yaml", seed, run_dir(out, task, seed), args.ranks,
                           task.trpo, budget_s, OVERRIDES)
    rows = [row for t in tasks if (row := collect(out, t, args.seeds, budget_s)) is not None]
    if not rows:
        sys.exit(f"no runs of {' '.join(args.tasks)} in {out}")
    print("\n".join(full_table(rows)))
    print("\n".join(short_table(rows)))
    meta = {"date": time.strftime("%Y-%m-%d"), "ranks": args.ranks, "cpus": os.cpu_count(),
            "machine": platform.machine(), "note": args.note}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "overrides": OVERRIDES, "rows": rows}, indent=2))
    print(f"wrote {path}")
    if args.docs:
        doc = Path(args.docs)
        image = figure(rows, doc.parent / "images" / "paper_table.png")
        write_doc(doc, rows, meta, image)
        print(f"wrote {doc} and {image}")


if __name__ == "__main__":
    main()
