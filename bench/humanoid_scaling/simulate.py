"""Generation makespans under each way of assigning episodes to ranks, simulated from measured episode
times: static pairs, node-dynamic and cluster-wide dynamic episodes (list scheduling), es-mpi's default
across nodes event by event (lockstep slots and the hand-over of episodes in flight), and two references.
"""

from __future__ import annotations

import heapq

import numpy as np

from es_mpi.engine.context import DEFAULT_SLOTS as SLOTS
from es_mpi.envs.rollout import POLL_EVERY
from es_mpi.parallel.handover import ClusterHandover

from .figures import EVAL_EPISODES, NODE_RANKS, PAIRS

EVENT_MODES = ("handover", "balance")  # simulated event by event (handover_makespan)


def task_nodes(p: int, pairs: int = PAIRS) -> np.ndarray:
    """The node owning each task of es-mpi's task list under `MpiComm.tasks` (node counter): task t belongs
    to the node of rank t mod p (nodes of NODE_RANKS consecutive ranks)."""
    return (np.arange(EVAL_EPISODES + 2 * pairs) % p) // NODE_RANKS


def makespans(episodes: np.ndarray, p: int, reps: int, mode: str, rng: np.random.Generator,
              pairs: int = PAIRS, costs: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Monte-Carlo generation makespans of `pairs` pairs drawn (with replacement) from measured (pairs, 2)
    episode times, plus EVAL_EPISODES evaluation episodes drawn from the same episode times.

    `static-pairs`: tasks are the evaluation episodes then the pairs, task t on rank t mod p;
    `node-dynamic`: tasks are the evaluation episodes then episode 2j+side of every pair; a node owns the
    tasks of `task_nodes` and its ranks take the next one, in task order, when free (`MpiComm.tasks` with
    its node-shared counter); `dynamic`: the same task list, the next task to the first free rank anywhere
    in the cluster; `handover`: es-mpi's default, event by event (`handover_makespan`, with `costs` =
    (seconds per env step, seconds to move one episode)); `balance`: the same with `balance`; `sharing`
    and `floor`: the references `sharing_makespan` and `floor_makespan`."""
    out = np.empty(reps)
    ranks = min(NODE_RANKS, p)
    node = task_nodes(p, pairs)
    order = np.argsort(node, kind="stable")  # each node's tasks, in task order
    cuts = np.cumsum(np.bincount(node))[:-1]
    for r in range(reps):
        drawn = episodes[rng.integers(0, len(episodes), pairs)]
        evals = episodes.ravel()[rng.integers(0, episodes.size, EVAL_EPISODES)]
        if mode == "static-pairs":
            tasks = np.concatenate([evals, drawn.sum(1)])
            out[r] = np.bincount(np.arange(tasks.size) % p, weights=tasks, minlength=p).max()
            continue
        tasks = np.concatenate([evals, drawn.ravel()])
        if mode == "dynamic":
            out[r] = list_schedule(tasks, p)
        elif mode == "sharing":
            out[r] = sharing_makespan(tasks, p)
        elif mode == "floor":
            out[r] = floor_makespan(tasks, p)
        elif mode in EVENT_MODES:
            out[r] = handover_makespan(tasks, p, *costs, rng, balance=mode == "balance")
        else:
            out[r] = max(list_schedule(part, ranks) for part in np.split(tasks[order], cuts))
    return out


def handover_makespan(tasks: np.ndarray, p: int, step_s: float, move_s: float, rng: np.random.Generator,
                      balance: bool = False) -> float:
    """Makespan of es-mpi's default, simulated event by event. A rank holds up to SLOTS episodes in
    lockstep, each advancing at 1/k of a core with k in flight (Humanoid's batch steps no faster than
    one episode at a time: bench/batched.py), and refills a free slot from the cluster-wide counter while
    it holds fewer than its share of the tasks left (the first SLOTS * p tasks go out round-robin: at
    1,440 ranks every task starts at once). A rank left with nothing waits; every rank holding two or more
    episodes would give it its youngest at its next poll point (every POLL_EVERY lockstep steps: k *
    POLL_EVERY * step_s apart, the phase uniform) after seeing the waiting count (cached up to
    ClusterHandover.CACHE_S, the age uniform); the first to do so gives, and the episode arrives `move_s`
    later, then runs alone at a full core. The generation ends when the last episode does, plus the
    waiting ranks' check (WAIT_CACHE_S + BACKOFF_S). Each rank keeps a virtual clock advancing at 1/k;
    an episode ends when its rank's clock reaches the episode's finish value.

    With `balance` (a what-if, not es-mpi's code), a rank whose count falls to k asks too, and any rank
    holding k + 2 or more gives: episodes then also move to ranks still running some, into their batch."""
    k = np.zeros(p, np.int64)
    clock, synced = [0.0] * p, [0.0] * p
    flight: list[list[tuple[float, float]]] = [[] for _ in range(p)]  # (finish, start) clock values per episode
    version, events = [0] * p, []  # (time, 1, version, rank, 0): an episode ends; (time, 0, 0, to, from): a move
    asking = np.zeros(p, bool)  # a move to the rank is on its way (with `balance`: one request at a time)
    now, taken, end = 0.0, 0, 0.0

    def sync(r: int) -> None:
        clock[r] += (now - synced[r]) / max(k[r], 1)
        synced[r] = now

    def arm(r: int) -> None:
        """(Re)schedule the end of rank r's next episode; older entries for r become stale."""
        version[r] += 1
        if flight[r]:
            finish = min(f for f, _ in flight[r])
            heapq.heappush(events, (now + (finish - clock[r]) * k[r], 1, version[r], r, 0))

    def add(r: int, work: float, ran: float = 0.0) -> None:
        flight[r].append((clock[r] + work, clock[r] - ran))
        k[r] += 1

    def wait(r: int) -> None:
        givers = np.flatnonzero(k >= k[r] + 2)
        asking[r] = bool(givers.size)
        if givers.size:
            delay = (rng.uniform(0, POLL_EVERY * k[givers] * step_s)
                     + rng.uniform(0, ClusterHandover.CACHE_S, givers.size))
            i = int(np.argmin(delay))
            heapq.heappush(events, (now + delay[i] + move_s, 0, 0, r, int(givers[i])))

    for i in range(min(tasks.size, SLOTS * p)):
        add(i % p, tasks[i])
        taken += 1
    for r in range(p):
        arm(r)
    while events:
        now, kind, ver, r, giver = heapq.heappop(events)
        if kind == 1:
            if ver != version[r]:
                continue
            sync(r)
            flight[r].remove(min(flight[r]))
            k[r] -= 1
            end = now
            while taken < tasks.size and k[r] < max(1, min(SLOTS, -(-(tasks.size - taken) // p))):
                add(r, tasks[taken])
                taken += 1
            arm(r)
            if (k[r] == 0 or balance) and not asking[r]:
                wait(r)
        elif k[giver] >= k[r] + 2:
            asking[r] = False
            sync(giver)
            sync(r)
            finish, start = max(flight[giver], key=lambda e: e[1])  # the youngest
            flight[giver].remove((finish, start))
            k[giver] -= 1
            add(r, finish - clock[giver], clock[giver] - start)
            arm(giver)
            arm(r)
            if balance:
                wait(r)
        else:
            wait(r)  # the giver ran out first: ask again
    return end + ClusterHandover.WAIT_CACHE_S + ClusterHandover.BACKOFF_S


def sharing_makespan(tasks: np.ndarray, p: int) -> float:
    """Makespan when every episode starts at once and the p cores are shared equally among the M still
    running, each at min(1, p/M) of a core, as if episodes moved between cores freely and at no cost: the
    ideal that starting every task at once and handing episodes in flight over approaches, without knowing
    which episodes will run long. Between two consecutive episode ends (sorted work w_i) the M left
    advance by w_i - w_(i-1) each."""
    work = np.sort(tasks)
    left = tasks.size - np.arange(tasks.size)
    return float((np.diff(work, prepend=0.0) * np.maximum(left / p, 1.0)).sum())


def floor_makespan(tasks: np.ndarray, p: int) -> float:
    """No schedule of these episodes on p cores ends sooner than the longest episode or the mean load (a
    scheduler that knew every length and could split cores freely would reach it: McNaughton's rule)."""
    return float(max(tasks.max(), tasks.sum() / p))


def list_schedule(units: np.ndarray, workers: int) -> float:
    """Makespan when each unit, in order, goes to the worker that is free first."""
    heap = [0.0] * workers
    for u in units.tolist():
        heapq.heapreplace(heap, heap[0] + u)
    return max(heap)
