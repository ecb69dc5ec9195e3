"""Runs read back from metrics.h5, grouped by job across seeds, and the summary table of a report."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_mpi.runs.job import RESUMABLE_KEYS, ConfigError, job_from_dict, parse_yaml
from es_mpi.runs.metrics import METRICS, read_metrics, read_metrics_attrs

# Evaluation return that counts as solving a task, where gymnasium's spec has no reward_threshold.
# Humanoid: Salimans et al. 2017, section 4.1 (timesteps to reach a score of 6000).
PAPER_THRESHOLDS = {"Humanoid": 6000.0}

# Two-sided 95% quantiles of Student's t for 1..10 degrees of freedom (no scipy among the dependencies).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t95(df: int) -> float:
    """Student's t 97.5% quantile; beyond the table, the Cornish-Fisher expansion (error below 0.1%)."""
    if df <= len(_T95):
        return _T95[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Run:
    path: Path
    env_id: str
    seed: int
    job_key: str  # digest of the job without run.seed and budgets: equal keys are seeds of one job
    strategy: str  # the job's strategy.kind
    metrics: dict[str, np.ndarray]


@dataclass(frozen=True)
class Group:
    """Runs of one job that differ only in their seed (and budget)."""

    label: str
    env_id: str
    runs: list[Run]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]


def load_run(run_dir: Path) -> Run:
    """A run directory's metrics; a missing, foreign or still empty file is a ConfigError."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a directory; give a run directory made by es-mpi train")
    if not path.exists():
        raise ConfigError(f"{run_dir}: no {METRICS}; give a run directory made by es-mpi train")
    try:
        metrics, attrs = read_metrics(run_dir), read_metrics_attrs(run_dir)
        job = job_from_dict(parse_yaml(str(attrs["job_yaml"]), f"{path}:job_yaml"), f"{path}:job_yaml")
    except (OSError, KeyError) as exc:
        raise ConfigError(f"{path}: unreadable or not written by es-mpi train ({exc})") from None
    if metrics["generation"].size == 0:
        raise ConfigError(f"{path}: no generation recorded yet; run the report again after the first one")
    key = job.digest(ignore=(*RESUMABLE_KEYS, "run.seed"))
    return Run(run_dir, job.env.id, job.run.seed, key, job.strategy.kind, {**metrics, **evaluation_axes(metrics)})


def evaluation_axes(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """eval_timesteps and eval_wall_s of every evaluated row: an evaluation scores the parameters before its
    generation's update, which had spent the previous row's steps and time. Files written before these
    columns existed hold -1 and NaN there (or lack them); their values are the previous row's."""
    n = metrics["timesteps"].size
    evaluated = np.isfinite(metrics["eval_return"])
    out = {}
    for column, spent, missing in (("eval_timesteps", "timesteps", -1), ("eval_wall_s", "wall_s", np.nan)):
        previous = np.concatenate([[0], metrics[spent][:-1]]).astype(metrics[spent].dtype)
        known = metrics.get(column, np.full(n, missing, previous.dtype))
        absent = ~np.isfinite(known) | (known < 0)
        out[column] = np.where(evaluated & absent, previous, known)
    return out


def group_runs(runs: list[Run]) -> list[Group]:
    """Groups in order of first appearance, seeds sorted; when one task has several jobs, a label names
    each one's strategy and digest."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(run.job_key, []).append(run)
    tasks = [members[0].env_id for members in by_key.values()]
    groups = []
    for key, members in by_key.items():
        env_id = members[0].env_id
        label = env_id if tasks.count(env_id) == 1 else f"{env_id} [{members[0].strategy} {key[:6]}]"
        groups.append(Group(label, env_id, sorted(members, key=lambda r: r.seed)))
    return groups


def default_threshold(env_id: str) -> float | None:
    """gymnasium's reward_threshold for the id, else the paper's value for the task, else None."""
    import gymnasium as gym

    try:
        found = gym.spec(env_id).reward_threshold
    except gym.error.Error:
        found = None
    return found if found is not None else PAPER_THRESHOLDS.get(env_id.split("-")[0])


def mean_interval(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and the 95% Student-t interval of that mean; a single seed has no band."""
    n = curves.shape[0]
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    half = t95(n - 1) * curves.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def seed_curves(runs: list[Run], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """Every seed's curve on one x grid (the union of their points where all seeds have data), by linear
    interpolation; rows where `y` is NaN (generations without evaluation) are skipped."""
    points = []
    for run in runs:
        keep = np.isfinite(run.metrics[y])
        points.append((run.metrics[x][keep].astype(np.float64), run.metrics[y][keep]))
    points = [(px, py) for px, py in points if px.size]
    if not points:
        return np.empty(0), np.empty((0, 0))
    lo, hi = max(px[0] for px, _ in points), min(px[-1] for px, _ in points)
    grid = np.unique(np.concatenate([px for px, _ in points]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    return grid, np.array([np.interp(grid, px, py) for px, py in points])


def first_reaching(metrics: dict[str, np.ndarray], threshold: float) -> int | None:
    """Row of the first evaluation at or above `threshold`."""
    hits = np.flatnonzero(metrics["eval_return"] >= threshold)
    return int(hits[0]) if hits.size else None


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def summary_rows(groups: list[Group], thresholds: dict[str, float]) -> list[dict]:
    """One row per group; returns and times are means over seeds, `*_std` their spread."""
    rows = []
    for g in groups:
        evals = [r.metrics["eval_return"][np.isfinite(r.metrics["eval_return"])] for r in g.runs]
        best = _mean_std([e.max() if e.size else math.nan for e in evals])
        final = _mean_std([e[-1] if e.size else math.nan for e in evals])
        threshold = thresholds.get(g.env_id, default_threshold(g.env_id))
        hit_rows = [first_reaching(r.metrics, threshold) if threshold is not None else None for r in g.runs]
        hits = [(r, i) for r, i in zip(g.runs, hit_rows) if i is not None]
        rows.append({
            "task": g.env_id,
            "label": g.label,
            "seeds": " ".join(str(s) for s in g.seeds),
            "generations": int(min(r.metrics["generation"].size for r in g.runs)),
            "timesteps": _mean_std([float(r.metrics["timesteps"][-1]) for r in g.runs])[0],
            "wall_s": _mean_std([float(r.metrics["wall_s"][-1]) for r in g.runs])[0],
            "best_eval": best[0], "best_eval_std": best[1],
            "final_eval": final[0], "final_eval_std": final[1],
            "threshold": math.nan if threshold is None else float(threshold),
            "seeds_reaching": len(hits),
            "timesteps_to_threshold": _mean_std([float(r.metrics["eval_timesteps"][i]) for r, i in hits])[0],
            "wall_s_to_threshold": _mean_std([float(r.metrics["eval_wall_s"][i]) for r, i in hits])[0],
            "steps_per_s": _mean_std([float(r.metrics["timesteps"][-1] / r.metrics["wall_s"][-1])
                                      for r in g.runs])[0],
        })
    return rows


def to_csv(rows: list[dict]) -> str:
    """Full precision, empty cells for missing values, for spreadsheets and pandas."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return out.getvalue()


def _num(value: float, digits: int = 1, spread: float = math.nan) -> str:
    if math.isnan(value):
        return "—"
    text = f"{value:,.{digits}f}"
    return f"{text} ± {spread:,.{digits}f}" if spread > 0 else text


def to_markdown(rows: list[dict]) -> str:
    """The table a person reads: means over seeds ± their standard deviation."""
    head = ["task", "seeds", "generations", "timesteps", "wall time (s)", "best eval return",
            "final eval return", "threshold", "seeds reaching", "timesteps to threshold",
            "wall time to threshold (s)", "train steps/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        n = len(r["seeds"].split())
        cells = [
            r["label"], r["seeds"], str(r["generations"]), _num(r["timesteps"], 0), _num(r["wall_s"]),
            _num(r["best_eval"], 1, r["best_eval_std"]), _num(r["final_eval"], 1, r["final_eval_std"]),
            _num(r["threshold"]), "—" if math.isnan(r["threshold"]) else f"{r['seeds_reaching']}/{n}",
            _num(r["timesteps_to_threshold"], 0), _num(r["wall_s_to_threshold"]), _num(r["steps_per_s"], 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
