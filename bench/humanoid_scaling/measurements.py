"""What the projection starts from: measured on this machine now, or read back from an earlier run's JSON
(`--reproject`), in the same form either way."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_mpi.core.noise import fill_noise

from .figures import JOB, NODE_RANKS, PARAMS
from .measure_mpi import measure_gather, measure_grab
from .measure_work import measure_episodes, measure_update

MIXED_FULL_FRACTION = 0.6  # late-mixed: the share of episodes that reach the cap
LATE_KWARGS = "{terminate_when_unhealthy: false}"  # late-proxy: full-length episodes from the initial policy


@dataclass(frozen=True)
class Measurements:
    meta: dict  # machine, date, load, mode and config (grows wall_s, loadavg_end, reprojected)
    mc_reps: int  # Monte-Carlo repetitions of each simulation
    gather: dict  # the collective's runs and fit, and the grab ("grab")
    update: dict
    early: dict  # episode times of the initial policy
    late: dict  # episode times of full-length episodes
    mixed_full_fraction: float
    quick: bool
    started: float  # time.perf_counter() at the start of the measurements


def measure(quick: bool) -> Measurements:
    """Everything this machine measures, with progress lines: the collective and the grab, the update at
    paper scale, and early and late Humanoid episodes."""
    cfg = {"gather_repeats": 40 if quick else 200, "update_repeats": 2 if quick else 5,
           "early_pairs": 40 if quick else 150, "late_pairs": 3 if quick else 40, "mc_reps": 50 if quick else 200,
           "noise_entries": 20_000_000 if quick else 50_000_000}
    from mpi4py import MPI

    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{platform.node()} "
            f"({platform.processor() or platform.machine()})", "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "mpi": " ".join(MPI.Get_library_version().split()[:3]), "mode": "quick" if quick else "full",
            "loadavg_start": [round(x, 2) for x in os.getloadavg()], "config": cfg}
    started = time.perf_counter()
    print("1/3 allgather latency (oversubscribed: upper bounds)", flush=True)
    gather = measure_gather(cfg["gather_repeats"], 10)
    gather["grab"] = measure_grab(4.0 if quick else 15.0)
    print(f"2/3 update at paper scale (noise table {cfg['noise_entries']:,} entries)", flush=True)
    noise = np.empty(cfg["noise_entries"], np.float32)
    fill_noise(noise, JOB.es.noise_seed)
    update = measure_update(noise, PARAMS, cfg["update_repeats"])
    print(f"  full update {update['full_update_s'] * 1e3:,.0f} ms, "
          f"split (1/{NODE_RANKS}) {update['split_update_s'] * 1e3:.1f} ms", flush=True)
    print(f"3/3 {JOB.env.id} episodes", flush=True)
    early = measure_episodes(noise, cfg["early_pairs"], None)
    print(f"  early: {early['pairs']} pairs, mean length {early['episode_len_mean']:.1f}, "
          f"pair {early['pair_s_mean'] * 1e3:.1f} ms", flush=True)
    late = measure_episodes(noise, cfg["late_pairs"], LATE_KWARGS)
    print(f"  late-proxy: {late['pairs']} pairs, mean length {late['episode_len_mean']:.0f}, "
          f"pair {late['pair_s_mean'] * 1e3:.0f} ms", flush=True)
    return Measurements(meta, cfg["mc_reps"], gather, update, early, late, MIXED_FULL_FRACTION, quick, started)


def reload(path: Path) -> Measurements:
    """The measurements saved in an earlier run's JSON; its date and wall time stay, the time of this
    reprojection is added to its meta."""
    saved = json.loads(path.read_text())
    meta = saved["meta"]
    meta["reprojected"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return Measurements(meta, meta["config"]["mc_reps"], saved["gather"], saved["update"],
                        saved["scenarios"]["early"], saved["scenarios"]["late-proxy"],
                        saved["mixed_full_fraction"], meta["mode"] == "quick", time.perf_counter() - meta["wall_s"])
