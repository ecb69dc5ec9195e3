"""The scaling model's event simulation of es-mpi's default assignment (bench/humanoid_scaling/simulate.py),
on cases small enough to work out by hand: the efficiency at 1,440 ranks in docs/scaling.md rests on it; and
the placement of the generated section between its markers."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import ROOT

from es_mpi.parallel.handover import ClusterHandover

sys.path.insert(0, str(ROOT / "bench"))
from humanoid_scaling import section, simulate  # noqa: E402

END = ClusterHandover.WAIT_CACHE_S + ClusterHandover.BACKOFF_S


def makespan(tasks: list[float], p: int, step_s: float = 0.0, move_s: float = 0.0) -> float:
    return simulate.handover_makespan(np.array(tasks), p, step_s, move_s, np.random.default_rng(0)) - END


def test_one_rank_shares_its_core_among_its_slots():
    # 10 tasks, 8 slots: all the work is done on one core, whatever the order
    assert makespan([1.0, 2.0, 0.5, 0.25, 3.0, 1.0, 1.0, 1.0, 2.0, 0.75], 1) == pytest.approx(12.5)


def test_fewer_tasks_than_ranks_run_alone():
    assert makespan([0.3, 1.7, 0.9], 5) == pytest.approx(1.7)


def test_a_waiting_rank_takes_over_an_episode_in_flight():
    # Round-robin: rank 0 holds [1, 1] at half a core each, rank 1 holds [1, 0.1]. Without a hand-over
    # rank 0 ends at 2.0. Rank 1 is free at 1.1 (0.1 shared, then 1 alone), when each of rank 0's
    # episodes has 0.45 left; one moves, and both end at 1.55 plus the mover's delay: the next poll point
    # (at most 8 lockstep steps of 2 episodes, 0.016 s here), the cache's age (up to CACHE_S) and the move.
    step, move = 0.001, 0.002
    got = makespan([1.0, 1.0, 1.0, 0.1], 2, step, move)
    assert 1.55 + move <= got <= 1.55 + move + 8 * 2 * step + ClusterHandover.CACHE_S


def test_more_tasks_than_slots_are_taken_as_slots_free():
    # 2 ranks, 20 equal tasks: 8 each at first, then the share of what is left; the work is even, so
    # no hand-over is needed and the generation takes half the work
    assert makespan([0.1] * 20, 2) == pytest.approx(1.0)


def test_equal_sharing_runs_every_episode_at_the_same_pace():
    # 2 cores, 4 episodes: at half a core each the three of work 1 end at 2.0; the last then runs alone
    # at a full core for its remaining 2.0, so the cores idle half the time from 2.0 to 4.0
    assert simulate.sharing_makespan(np.array([1.0, 3.0, 1.0, 1.0]), 2) == pytest.approx(4.0)
    # on one core, sharing changes nothing: the work in all
    assert simulate.sharing_makespan(np.array([0.5, 2.0, 1.5]), 1) == pytest.approx(4.0)
    # fewer episodes than cores: each at a full core, the longest decides
    assert simulate.sharing_makespan(np.array([0.3, 1.7]), 5) == pytest.approx(1.7)


def test_the_floor_is_the_longest_episode_or_the_mean_load():
    assert simulate.floor_makespan(np.array([1.0, 3.0, 1.0, 1.0]), 2) == pytest.approx(3.0)
    assert simulate.floor_makespan(np.array([1.0, 1.0, 1.0, 1.0]), 2) == pytest.approx(2.0)


def test_balance_also_moves_episodes_to_ranks_still_running_some():
    # Round-robin: rank 0 holds three episodes of 1, rank 1 one of 0 (it ends at once) and one of 2.
    # Default: rank 1 runs its 2 alone and waits at 2.0, when each of rank 0's has 1/3 left at a third of
    # a core; one moves (rank 1 ends it at 2 + 1/3), and another then (1/6 left each): the generation ends
    # at 2.5, plus two movers' delays. With balance, rank 1 (one in flight) takes one of rank 0's three at
    # once: both ranks hold two at half a core, rank 0 ends at 2.0, and rank 1's 2 has 1 left then, alone:
    # the generation ends at 3.0 (moving early can also make it longer).
    tasks = np.array([1.0, 0.0, 1.0, 2.0, 1.0])
    default = simulate.handover_makespan(tasks, 2, 0.0, 0.0, np.random.default_rng(0)) - END
    assert 2.5 <= default <= 2.5 + 2 * ClusterHandover.CACHE_S
    balanced = simulate.handover_makespan(tasks, 2, 0.0, 0.0, np.random.default_rng(0), balance=True) - END
    assert balanced == pytest.approx(3.0, abs=ClusterHandover.CACHE_S)


def test_the_section_replaces_only_what_lies_between_the_markers(tmp_path):
    doc = tmp_path / "scaling.md"
    doc.write_text(f"# Scaling\n\nby hand\n{section.BEGIN}\nold figures\n{section.END}\n\nalso by hand\n")
    assert section.place_section("## new figures\n", doc)
    assert section.place_section("## new figures\n", doc)  # again: the same file
    assert doc.read_text() == f"# Scaling\n\nby hand\n{section.BEGIN}\n## new figures\n{section.END}\n\nalso by hand\n"


def test_a_doc_without_the_markers_is_left_alone(tmp_path, capsys):
    doc = tmp_path / "scaling.md"
    doc.write_text("# Scaling\n")
    assert not section.place_section("## new figures\n", doc)
    assert doc.read_text() == "# Scaling\n"
    assert section.BEGIN in capsys.readouterr().out
