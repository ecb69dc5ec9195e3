"""What limits efficiency at 1,440 ranks and what would change it: the projection read in plain language,
its numbers filled in from the results."""

from __future__ import annotations

import functools

from .figures import FULL_SCALE, NODE_MEMORY_BPS, PAIRS, TASKS
from .project import BALANCE, CLUSTER, FLOOR, HANDOVER, SHARING, STATIC_PAIRS, SWEEP_PAIRS, TODAY, full_scale_row


def conclusion(res: dict) -> str:
    """Plain-language reading of the projection at 1,440 ranks, numbers filled in from this run."""
    row = functools.partial(full_scale_row, res)

    def e(name: str, variant: str, key: str = "E") -> str:
        return f"{row(name, variant)[key]:.0%}"

    def share(name: str, variant: str, key: str) -> str:
        r = row(name, variant)
        return f"{r[key] / r['T_s']:.1%}"

    def late(variant: str, key: str = "E") -> str:
        """E (or `key`'s share of T(p) if it is a time) in both late scenarios, 'late-proxy / late-mixed'."""
        of = e if key.startswith("E") else share
        return f"{of('late-proxy', variant, key)} / {of('late-mixed', variant, key)}"

    def pairs_for_90(name: str) -> str:
        hit = [r["pairs"] for r in res["pairs_sweep"][name] if r["E"] >= 0.9]
        return f"{hit[0]:,}" if hit else f"more than {SWEEP_PAIRS[-1]:,}"

    early = row("early", HANDOVER)
    dim = res["update"]["dim"]
    gb = PAIRS * dim * 4 / 1e9
    met = [name for name in ("late-proxy", "late-mixed") if row(name, HANDOVER)["E"] >= 0.9]
    verdict_90 = {0: "not met", 1: f"met only in {met[0] if met else ''}", 2: "met in both late scenarios"}[len(met)]
    return " ".join([
        f"At {FULL_SCALE:,} ranks a rank runs about {TASKS / FULL_SCALE:.1f} episodes per generation.",
        "Late in training, es-mpi's default across nodes (cluster-wide counter, lockstep slots and the hand-over "
        f"of episodes in flight to waiting ranks of any node) reaches E = {late(HANDOVER)} (late-proxy / "
        f"late-mixed; {late(HANDOVER, 'E_no_comm')} without the oversubscribed T_comm upper bound) in this model, "
        f"against {late(CLUSTER)} for one episode at a time per rank, {late(STATIC_PAIRS)} for static pairs and "
        f"{late(TODAY)} for node-only dynamic assignment.",
        "One episode at a time, the straggler tail costs about one episode, whoever hands out the work "
        f"(T_wait = {late(CLUSTER, 'T_wait_s')} of T(p)); with every episode started at once and episodes in "
        "flight handed to whichever rank waits, what remains is the end of the generation: the last episodes "
        "run alone on a core each, and episodes move only to ranks that have none, so a rank still holding "
        "several runs each at a fraction of a core while others run their last at a full core (T_wait = "
        f"{late(HANDOVER, 'T_wait_s')}; the delays of polling and caching themselves cost little: the simulation "
        "without them differs by a few tenths of a point).",
        "Handing episodes also to ranks that still run some (into their batch; not built) would reach "
        f"{late(BALANCE)} in the same simulation, and ideal equal sharing of the cores, with free and instant "
        f"migration, {late(SHARING)}: the ideal of es-mpi's approach (every episode started at once, the cores "
        "shared), which stays short of the floor because with every episode advancing at the same pace the "
        "longest ones still finish last, alone.",
        f"Only a scheduler that knew the lengths in advance could approach the floor, {late(FLOOR)}.",
        f"With the paper's {PAIRS:,} pairs the 90% target at {FULL_SCALE:,} ranks is {verdict_90} by this model; "
        "the pairs sweep above shows the pairs per generation that reach it: "
        f"{pairs_for_90('late-proxy')} / {pairs_for_90('late-mixed')} (late-proxy / late-mixed).",
        f"T_comm is {share('late-proxy', HANDOVER, 'T_comm_s')} (an upper bound) and T_update "
        f"{share('late-proxy', HANDOVER, 'T_update_s')}.",
        f"Early in training no scheduling helps: {early['T_work_s'] * 1e3:.0f} ms of work per generation meets a "
        f"{early['comm_latency_s'] * 1e3:.0f} ms collective (an upper bound, fitted on an oversubscribed 2-core "
        f"machine and extrapolated from 32 to {FULL_SCALE:,} ranks) and a {early['T_update_s'] * 1e3:.0f} ms "
        f"update, so E is {e('early', HANDOVER)} ({e('early', HANDOVER, 'E_no_comm')} without T_comm).",
        f"Whatever the code, the update reads {PAIRS:,} noise slices of {dim:,} float32 per node ({gb:.1f} GB): "
        f"at an assumed {NODE_MEMORY_BPS / 1e9:.0f} GB/s per node that is at least "
        f"{gb * 1e9 / NODE_MEMORY_BPS * 1e3:.0f} ms, so the 5% target for the update holds late in training and "
        "cannot hold this early.",
        "Not modelled: the evaluation episodes are the first tasks, drawn here from the training episodes' "
        "times; if they run longer (unperturbed policy, no action noise, no adaptive cap) they become the tail.",
        "None of these figures is a cluster measurement: the collective and the grab costs must be measured on "
        "the real network (`bench/scaling.py`'s worker mode under srun), and the late scenarios are proxies.",
    ])
