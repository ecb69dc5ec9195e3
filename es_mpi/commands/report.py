"""`es-mpi report`: figures and summary tables from the metrics.h5 of one or more runs (live ones too)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from es_mpi.reports.summary import group_runs, load_run, summary_rows, to_csv, to_markdown
from es_mpi.runs.job import ConfigError
from es_mpi.runs.storage import EXIT_STORAGE, describe, fix_for

INSTALL_HINT = "pip install 'es-mpi[report]'"


def import_extra(module: str, purpose: str) -> ModuleType:
    """Plotting and video libraries are optional (the `report` extra); say how to get one that is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs {module}, which is not installed; {INSTALL_HINT}") from None


def parse_thresholds(items: list[str]) -> dict[str, float]:
    """`--threshold ENV_ID=RETURN` items as a mapping."""
    out = {}
    for item in items:
        env_id, _, value = item.partition("=")
        try:
            if not env_id.strip():
                raise ValueError(item)
            out[env_id.strip()] = float(value)
        except ValueError:
            raise ConfigError(
                f"--threshold {item}: expected ENV_ID=RETURN, e.g. --threshold HalfCheetah-v5=3000"
            ) from None
    return out


def write_report(run_dirs: list[Path], out: Path, thresholds: dict[str, float]) -> list[Path]:
    """Learning curves per task, the time breakdown, the archive map of each novelty run, and the summary as
    Markdown and CSV; returns the files."""
    import_extra("matplotlib", "es-mpi report")
    from es_mpi.reports.plots import archive_map, file_name, learning_curves, time_breakdown

    groups = group_runs([load_run(Path(d)) for d in run_dirs])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task in dict.fromkeys(g.env_id for g in groups):
        written.append(learning_curves([g for g in groups if g.env_id == task], task, out / file_name(task)))
    written.append(time_breakdown(groups, out / "time_breakdown.png"))
    for group in groups:  # novelty runs: where the archive's behaviours lie
        for run in group.runs:
            drawn = archive_map(run.path, out / f"archive_{run.path.name}.png")
            written += [drawn] if drawn else []
    rows = summary_rows(groups, thresholds)
    for name, text in (("summary.md", to_markdown(rows)), ("summary.csv", to_csv(rows))):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


def report_command(args) -> int:
    """Print the summary table and the files written; exit 2 with one line for bad input, 4 when an output
    file cannot be written."""
    try:
        written = write_report(args.run_dirs, Path(args.out), parse_thresholds(args.thresholds))
    except ConfigError as exc:
        print(f"es-mpi: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a quota, a read-only --out: the runs themselves are untouched
        print(f"es-mpi: error: {exc.filename or args.out}: cannot write: {describe(exc)}; {fix_for(exc)}, then "
              "run es-mpi report again", file=sys.stderr)
        return EXIT_STORAGE
    print((Path(args.out) / "summary.md").read_text(encoding="utf-8"), end="")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
