"""The model: every term of T(p) = T_work + T_eval + T_wait + T_comm + T_update for each assignment of
episodes to ranks, at the target rank counts, from the measurements; E(p) = T_work / T(p).
"""

from __future__ import annotations

import math

import numpy as np

from es_mpi.engine.message import HEADER, ROW

from .figures import (
    BANDWIDTH_BPS,
    EVAL_EPISODES,
    FULL_SCALE,
    NODE_GRAB_LATENCY_S,
    NODE_RANKS,
    PAIRS,
    RECORD_BYTES,
    STAT_FRACTION,
    STAT_WIDTH,
    TARGET_P,
)
from .measure_work import mixed_late
from .simulate import EVENT_MODES, makespans

STATIC_PAIRS = "static pairs"
TODAY = "node-dynamic episodes (one node; ES_MPI_TASK_COUNTER=node)"
CLUSTER = "cluster-wide dynamic episodes, one at a time (ES_MPI_SLOTS=1)"
HANDOVER = "cluster-wide dynamic + hand-over of episodes in flight (default across nodes)"
SHARING = "ideal equal sharing (reference: every episode at once, free instant migration)"
FLOOR = "floor (reference: no schedule ends sooner)"
BALANCE = "hand-over also to ranks with fewer in flight (model only: not built)"
# (name, simulation mode, unit of work); the update is the node-split one in every variant.
VARIANTS = ((STATIC_PAIRS, "static-pairs", "pair"), (TODAY, "node-dynamic", "episode"),
            (CLUSTER, "dynamic", "episode"), (HANDOVER, "handover", "episode"))
# What-ifs at 1,440 ranks, costed like the default: a hand-over es-mpi does not have, the ideal of its
# approach, and the floor no schedule can beat.
REFERENCES = ((BALANCE, "balance", "episode"), (SHARING, "sharing", "episode"), (FLOOR, "floor", "episode"))
SWEEP_PAIRS = tuple(k * PAIRS for k in (1, 2, 4, 8))  # pairs per generation tried at 1,440 ranks (es-mpi's default)
PAIR_ROW = ROW + 2  # a pair's result row: an episode's, with a second return and length
EVENT_REPS_DIVISOR = 5  # the hand-over's event simulation is slower: a fifth of the repetitions
MIXED_PAIRS = 400  # pairs drawn for the synthetic late-mixed scenario


def move_time(atomic_s: float) -> float:
    """Seconds from a giver's decision to the record's arrival across nodes: claim, put and flush, set the
    flag (three remote operations at `atomic_s` each), plus the record at the assumed bandwidth."""
    return 3 * atomic_s + RECORD_BYTES * 8 / BANDWIDTH_BPS


def comm_time(p: int, fit: dict, gathered_bytes: float) -> tuple[float, float]:
    """(latency from the log2 fit, payload time at the assumed bandwidth, counted once per node)."""
    latency = fit["a_s"] + fit["b_s_per_log2p"] * math.log2(p)
    return max(latency, 0.0), gathered_bytes * 8 / BANDWIDTH_BPS


def gathered_bytes(p: int, unit: str, pairs: int = PAIRS) -> float:
    """Bytes one generation's allgather collects: headers, result rows (one per pair, or one per episode as
    es-mpi does) and observation-statistics rows (per pair, or per episode of the pairs drawn for
    statistics: twice as many)."""
    if unit == "pair":
        rows, stats = PAIR_ROW * (pairs + EVAL_EPISODES), STAT_FRACTION * pairs
    else:
        rows, stats = ROW * (EVAL_EPISODES + 2 * pairs), 2 * STAT_FRACTION * pairs
    return 8 * (HEADER * p + rows + stats * STAT_WIDTH)


def project(scenario: dict, gather: dict, update: dict, reps: int, rng: np.random.Generator,
            pairs: int = PAIRS, targets: tuple = TARGET_P, variants: tuple = VARIANTS) -> list[dict]:
    """Every term of T(p) for each target p and scheduling variant, with `pairs` pairs per generation (the
    weighted noise sum, measured for PAIRS pairs, scales with their number)."""
    episodes = np.array(scenario["episode_s"])
    mean_pair = float(episodes.sum(1).mean())
    fit = gather["fit"]["realistic"]
    med = update["median"]
    upd = med["ranks_s"] + med["slice_gradient_s"] * pairs / update["pairs"] + med["adam_s"]
    rows = []
    for p in targets:
        work = pairs * mean_pair / p
        evalw = EVAL_EPISODES * float(episodes.mean()) / p
        crn = int(rng.integers(2**32))  # common random numbers: every variant schedules the same draws
        for name, mode, unit in variants:
            n = max(1, reps // EVENT_REPS_DIVISOR) if mode in EVENT_MODES else reps
            costs = (scenario["us_per_step"] * 1e-6, move_time(gather["grab"]["median_s"]))
            makespan = float(makespans(episodes, p, n, mode, np.random.default_rng(crn), pairs, costs).mean())
            wait = max(makespan - work - evalw, 0.0)
            latency, payload = comm_time(p, fit, gathered_bytes(p, unit, pairs))
            units = (EVAL_EPISODES + (pairs if unit == "pair" else 2 * pairs)) / p
            grab = NODE_GRAB_LATENCY_S if mode == "node-dynamic" else (0.0 if mode == "static-pairs" else
                                                                        gather["grab"]["median_s"])
            dispatch = units * grab
            comm = latency + payload + dispatch
            total = work + evalw + wait + comm + upd
            rows.append({"p": p, "pairs": pairs, "variant": name, "T_work_s": work, "T_eval_s": evalw, "T_wait_s": wait,
                         "T_comm_s": comm, "comm_latency_s": latency, "comm_payload_s": payload,
                         "comm_dispatch_s": dispatch, "T_update_s": upd, "T_s": total, "E": work / total,
                         "E_no_comm": work / (total - comm)})
    return rows


def model_description(grab_s: float) -> dict:
    """The model in words and its assumed figures, saved beside the results."""
    return {
        "T": "T(p) = T_work + T_eval + T_wait + T_comm + T_update; E(p) = T_work / T(p)",
        "T_work": f"N * mean pair time / p, N = {PAIRS}, pair time = sum of its two episodes (measured)",
        "T_eval": f"{EVAL_EPISODES} evaluation episodes * mean episode time / p (drawn from the same episode times)",
        "T_wait": "Monte-Carlo mean makespan - T_work - T_eval; episodes drawn from the measured times",
        "T_comm": "a + b*log2(p) (fitted, oversubscribed: upper bound) + gathered bytes / bandwidth "
                  "(once per node) + grabs x grab latency",
        "T_update": f"centered ranks + weighted noise sum on a 1/{NODE_RANKS} coordinate slice (measured) + Adam",
        "variants": {name: {"mode": mode, "unit": unit} for name, mode, unit in VARIANTS},
        "bandwidth_bps": BANDWIDTH_BPS, "grab_latency_s": grab_s,
        "node_grab_latency_s": NODE_GRAB_LATENCY_S, "node_ranks": NODE_RANKS, "pairs": PAIRS,
        "eval_episodes": EVAL_EPISODES, "target_p": list(TARGET_P)}


def project_all(meta: dict, mc_reps: int, gather: dict, update: dict, early: dict, late: dict,
                mixed_full_fraction: float) -> dict:
    """The study's results: the scenarios, their projection at every target p, the pairs sweep and the
    what-ifs at 1,440 ranks, all drawn from one generator seeded 0 (in this order, so a reprojection of
    the same measurements repeats them exactly)."""
    rng = np.random.default_rng(0)
    scenarios = {"early": early, "late-proxy": late,
                 "late-mixed": mixed_late(late, MIXED_PAIRS, mixed_full_fraction, rng)}
    projection = {name: project(s, gather, update, mc_reps, rng) for name, s in scenarios.items()}
    default = next(v for v in VARIANTS if v[0] == HANDOVER)
    sweep = {name: [project(s, gather, update, max(1, mc_reps // 4), rng, n, (FULL_SCALE,), (default,))[0]
                    for n in SWEEP_PAIRS] for name, s in scenarios.items()}
    references = {name: project(s, gather, update, mc_reps, rng, PAIRS, (FULL_SCALE,), REFERENCES)
                  for name, s in scenarios.items()}
    return {"meta": meta, "model": model_description(gather["grab"]["median_s"]),
            "mc_reps": mc_reps, "mixed_full_fraction": mixed_full_fraction,
            "gather": gather, "update": update, "scenarios": scenarios, "projection": projection,
            "pairs_sweep": sweep, "references": references}


def full_scale_row(res: dict, scenario: str, variant: str) -> dict:
    """The row of `variant` (a projection variant or a reference) at 1,440 ranks in `scenario`."""
    rows = res["projection"][scenario] + res["references"][scenario]
    return next(r for r in rows if r["p"] == FULL_SCALE and r["variant"] == variant)
