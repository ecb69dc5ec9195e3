"""The study's tables in Markdown, printed by bench/scaling.py and set into the docs section."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from .figures import EVAL_EPISODES, FULL_SCALE
from .project import HANDOVER, REFERENCES, SWEEP_PAIRS, full_scale_row


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], left: Collection[int] = ()) -> str:
    """A Markdown table of already formatted cells: the columns in `left` are aligned left (text), the
    others right (numbers)."""
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    align = "|" + "|".join("---" if i in left else "---:" for i in range(len(header))) + "|"
    return "\n".join([row(header), align, *map(row, rows)])


def projection_table(rows: list[dict]) -> str:
    """Every term of T(p) for each projection row (times in ms)."""
    header = ["p", "assignment", "T_work ms", "T_eval ms", "T_wait ms", "T_comm ms", "T_update ms", "T(p) ms",
              "E(p)", "E if T_comm=0"]
    cells = [[f"{r['p']:,}", r["variant"], f"{r['T_work_s'] * 1e3:,.1f}", f"{r['T_eval_s'] * 1e3:,.1f}",
              f"{r['T_wait_s'] * 1e3:,.1f}", f"{r['T_comm_s'] * 1e3:,.2f}", f"{r['T_update_s'] * 1e3:,.1f}",
              f"{r['T_s'] * 1e3:,.1f}", f"{r['E']:.1%}", f"{r['E_no_comm']:.1%}"] for r in rows]
    return markdown_table(header, cells, left={1})


def sweep_table(res: dict) -> str:
    """E at 1,440 ranks under es-mpi's default assignment against pairs per generation."""
    sweep = res["pairs_sweep"]
    header = ["pairs per generation", "episodes per rank", *(f"E {name} (if T_comm=0)" for name in sweep)]
    cells = [[f"{n:,}", f"{(EVAL_EPISODES + 2 * n) / FULL_SCALE:.1f}",
              *(f"{rows[i]['E']:.1%} ({rows[i]['E_no_comm']:.1%})" for rows in sweep.values())]
             for i, n in enumerate(SWEEP_PAIRS)]
    return markdown_table(header, cells)


def reference_table(res: dict) -> str:
    """es-mpi's default at 1,440 ranks next to the what-ifs of REFERENCES, per scenario: T_wait ms, E."""
    header = ["scenario", "default: T_wait ms, E", "hand-over also to ranks with fewer in flight (not built)",
              "ideal equal sharing", "floor"]
    variants = (HANDOVER, *(name for name, _, _ in REFERENCES))
    cells = [[scenario, *(f"{r['T_wait_s'] * 1e3:,.0f}, {r['E']:.1%}"
                          for r in (full_scale_row(res, scenario, v) for v in variants))]
             for scenario in res["references"]]
    return markdown_table(header, cells, left={0})


def gather_table(gather: dict) -> str:
    """The collective's median time per p, header only and with the real payload."""
    cells = [[str(r["p"]), f"{r['header']['median_s'] * 1e3:.3f}", f"{r['realistic']['median_s'] * 1e3:.3f}",
              f"{r['realistic']['gathered_bytes'] / 1e3:,.0f}"] for r in gather["runs"]]
    return markdown_table(["p", "header only, ms", "realistic, ms", "gathered, kB"], cells)


def scenario_table(scenarios: dict) -> str:
    """Episode lengths and times of each scenario."""
    cells = [[name, str(s["pairs"]), f"{s['episode_len_mean']:.0f}", f"{s['us_per_step']:.0f}",
              f"{s['pair_s_mean'] * 1e3:,.1f}", f"{s['pair_s_cv']:.2f}"] for name, s in scenarios.items()]
    return markdown_table(["scenario", "pairs", "mean length", "us/step", "mean pair ms", "pair time CV"], cells,
                          left={0})
