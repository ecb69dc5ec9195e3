"""The report's figures (matplotlib, from the `report` extra): learning curves and the time breakdown."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from es_mpi.reports.summary import Group, mean_interval, seed_curves

# (column, panel title) and (column, x-axis label) of the learning-curve grid.
_RETURNS = [("eval_return", "Evaluation return (noiseless policy)"),
            ("return_mean", "Training return (mean over perturbed episodes)")]
_X_AXES = [("timesteps", "training timesteps (env steps)"), ("wall_s", "wall-clock training time (s)")]
_PARTS = ["rollout", "wait", "comm", "update"]


def learning_curves(groups: list[Group], task: str, path: Path) -> Path:
    """The figure of `curves_figure`, written to `path`."""
    curves_figure(groups, task).savefig(path, dpi=100)
    return path


def curves_figure(groups: list[Group], task: str) -> Figure:
    """2x2 panels for one task: evaluation and training return against timesteps and wall time; one
    colour per job, its line the mean over seeds and the band the 95% interval of that mean."""
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    several = any(len(g.runs) > 1 for g in groups)
    fig.suptitle(f"{task}: learning curves" + (" (mean over seeds, band: 95% interval)" if several else ""),
                 fontsize=14)
    for i, (y, title) in enumerate(_RETURNS):
        for j, (x, xlabel) in enumerate(_X_AXES):
            ax = axes[i, j]
            for k, group in enumerate(groups):
                # an evaluation scores the parameters before its generation: their own steps and time
                grid, curves = seed_curves(group.runs, f"eval_{x}" if y == "eval_return" else x, y)
                if grid.size == 0:
                    continue
                mean, lo, hi = mean_interval(curves)
                seeds = len(group.runs)
                label = f"{group.label} ({seeds} seed{'s' if seeds > 1 else ''})"
                ax.plot(grid, mean, color=f"C{k}", label=label, marker="o" if grid.size <= 30 else None, ms=3)
                if seeds > 1:
                    ax.fill_between(grid, lo, hi, color=f"C{k}", alpha=0.25, linewidth=0)
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("return")
            ax.grid(alpha=0.3)
    # one entry per job: every panel draws each job once (a run without evaluations misses two panels)
    entries = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=2, fontsize="small")
    return fig


def time_breakdown(groups: list[Group], path: Path) -> Path:
    """One stacked bar per run: mean seconds per generation in rollout, wait, communication, update and
    the rest (bookkeeping, writing files), so that a slow rank or a slow network stands out."""
    runs = [(g, r) for g in groups for r in g.runs]
    fig = Figure(figsize=(10, 1.5 + 0.5 * len(runs)), layout="constrained")
    ax = fig.subplots()
    names = [f"{g.label} seed {r.seed}, {int(r.metrics['ranks'][-1])} rank(s)" for g, r in runs]
    parts = {p: np.array([r.metrics[f"{p}_s"].mean() for _, r in runs]) for p in _PARTS}
    total = np.array([r.metrics["generation_s"].mean() for _, r in runs])
    parts["other"] = np.maximum(total - sum(parts.values()), 0.0)
    left = np.zeros(len(runs))
    for k, (part, seconds) in enumerate(parts.items()):
        ax.barh(names, seconds, left=left, color=f"C{k}", label=part)
        left += seconds
    ax.invert_yaxis()
    ax.set_title("Where a generation's time goes (mean over generations)")
    ax.set_xlabel("seconds per generation")
    fig.legend(loc="outside lower center", ncols=len(parts), fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def file_name(task: str) -> str:
    """`learning_curves_<task>.png` with characters that are awkward in file names replaced."""
    return "learning_curves_" + re.sub(r"[^A-Za-z0-9_.-]", "_", task) + ".png"


def archive_map(run_dir: Path, path: Path) -> Path | None:
    """The novelty archive of a run's checkpoint (a strategy that keeps one saves `archive/behaviour` and
    `archive/generation`): its first two behaviour dimensions coloured by the generation that added each
    entry, the agents' latest behaviours marked, and, for a maze job (env.kwargs.maze_map, gymnasium-robotics'
    layout), the walls drawn under them. None for a run without an archive."""
    from es_mpi.runs.checkpoint import CHECKPOINT, checkpoint_job, read_checkpoint

    if not (Path(run_dir) / CHECKPOINT).is_file():
        return None
    saved, attrs = read_checkpoint(Path(run_dir) / CHECKPOINT)
    points = saved.arrays.get("archive/behaviour")
    if points is None or points.ndim != 2 or points.shape[1] < 2 or not len(points):
        return None
    job = checkpoint_job(attrs, Path(run_dir) / CHECKPOINT)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    maze = job.env.kwargs.get("maze_map")
    if maze:
        scale = float(job.env.kwargs.get("maze_size_scaling", 1.0))
        rows, cols = len(maze), len(maze[0])
        for i, row in enumerate(maze):
            for j, cell in enumerate(row):
                x, y = (j + 0.5) * scale - cols * scale / 2, rows * scale / 2 - (i + 0.5) * scale
                if cell == 1:
                    ax.add_patch(Rectangle((x - scale / 2, y - scale / 2), scale, scale, color="0.8"))
                elif cell in ("g", "G"):
                    ax.plot(x, y, marker="*", ms=18, color="gold", mec="k", zorder=3, label="goal")
    dots = ax.scatter(points[:, 0], points[:, 1], c=saved.arrays["archive/generation"], cmap="viridis", s=14,
                      zorder=2)
    fig.colorbar(dots, ax=ax, label="generation that added the entry")
    agents = saved.arrays.get("agents/behaviour")
    if agents is not None and agents.ndim == 2 and agents.shape[1] >= 2:
        ax.scatter(agents[:, 0], agents[:, 1], marker="x", s=60, color="C3", zorder=4, label="agents (latest)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{job.env.id}, {job.strategy.kind}, seed {job.run.seed}: {len(points)} archive entries")
    ax.set_xlabel("behaviour 0 (x)")
    ax.set_ylabel("behaviour 1 (y)")
    fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    fig.savefig(path, dpi=100)
    return path
