"""The report's figures (matplotlib, from the `report` extra): learning curves and the time breakdown."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from es_mpi.reports.summary import Group, mean_interval, seed_curves

# (column, panel title) and (column, x-axis label) of the learning-curve grid.
_RETURNS = [("eval_return", "Evaluation return (noiseless policy)"),
            ("return_mean", "Training return (mean over perturbed episodes)")]
_X_AXES = [("timesteps", "training timesteps (env steps)"), ("wall_s", "wall-clock training time (s)")]
_PARTS = ["rollout", "wait", "comm", "update"]


def learning_curves(groups: list[Group], task: str, path: Path) -> Path:
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
            if ax.get_legend_handles_labels()[0]:  # a run without evaluations has no evaluation curve
                ax.legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=100)
    return path


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
