"""One writer per run directory: rank 0 holds RUN_DIR/run.lock for the run's lifetime.

The lock file names its holder (host, boot, pid and the process's start time, Slurm job id and restart
count, start time) and carries a heartbeat the holder refreshes while it trains. It appears whole or not at
all (written to a private file, then hard-linked into place: link fails if the name exists, also on NFS,
where flock does not reach across nodes). Another writer is refused with one line naming the holder,
unless the holder is gone; the rule (docs/cluster.md):

- holder on this host: gone when the host rebooted since (boot id), or its pid is dead or now belongs to a
  process that started later (pid reuse);
- holder on another host: gone when Slurm says its job ended or was requeued since (scontrol), or when its
  heartbeat is older than its own `stale_after_s` (at least STALE_MIN_S, and ten times the longest
  generation), for a node that died without Slurm to tell.

A gone holder's lock is taken over with a notice, so a requeued or resumed run goes on after kill -9 or a
dead node. The holder checks each generation that the lock is still its own, and stops (storage fault, not
requeued) if another run took it over."""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

from es_mpi.runs.schema import ConfigError
from es_mpi.runs.storage import RunDirectory, StorageError, describe, fix_for

LOCK = "run.lock"
# The holder rewrites its heartbeat at most this often (each write is an fsync on the run's file system).
HEARTBEAT_S = 60.0
# A holder on another host whose heartbeat is older than this (or ten generations) is taken to be gone.
STALE_MIN_S = 900.0
STALE_GENERATIONS = 10
# Slurm job states in which the job's processes may still run and write.
SLURM_LIVE = {"RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "STOPPED", "SIGNALING", "RESIZING", "STAGE_OUT"}


class LockError(ConfigError):
    """The run directory is in use by a live run (exit status 2, nothing touched)."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot, Linux), or None where /proc cannot tell."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return start is None or _start_ticks(pid) in (None, start)


def slurm_job(job_id: str) -> tuple[str, int] | None:
    """(state, restart count) of Slurm job `job_id` from scontrol; ("GONE", 0) when the controller no longer
    knows it (ended long ago); None when there is no Slurm to ask."""
    try:
        proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return ("GONE", 0) if "Invalid job id" in proc.stderr else None
    fields = dict(part.split("=", 1) for part in proc.stdout.split() if "=" in part)
    try:
        return fields["JobState"], int(fields.get("Restarts", 0))
    except (KeyError, ValueError):
        return None


def gone_because(holder: dict, now: float) -> str:
    """Why the holder no longer writes (the notice of a takeover), or "" if it may still."""
    if holder.get("host") == socket.gethostname():
        if holder.get("boot_id") != _boot_id():
            return "its host rebooted since"
        if not _alive(int(holder.get("pid", 0)), holder.get("pid_start")):
            return f"process {holder.get('pid')} is gone"
        return ""
    job = holder.get("slurm_job_id")
    found = slurm_job(str(job)) if job else None
    if found:
        state, restarts = found
        if state not in SLURM_LIVE:
            return f"its Slurm job {job} is {state}"
        if restarts > int(holder.get("slurm_restart", 0)):
            return f"its Slurm job {job} was requeued since (restart {restarts})"
    age = now - float(holder.get("heartbeat", 0))
    limit = float(holder.get("stale_after_s", STALE_MIN_S))
    return f"its last heartbeat is {age:.0f} s old (stale after {limit:.0f} s)" if age > limit else ""


def holder_text(holder: dict, now: float) -> str:
    """'es-mpi pid 123 on node7 (Slurm job 45), started 2025-01-02 03:04:05, heartbeat 6 s ago'."""
    if "pid" not in holder:
        return f"a lock file es-mpi cannot read, written {now - holder['heartbeat']:.0f} s ago"
    job = holder.get("slurm_job_id")
    slurm = f" (Slurm job {job})" if job else ""
    beat = now - float(holder.get("heartbeat", now))
    return (f"es-mpi pid {holder.get('pid')} on {holder.get('host')}{slurm}, started {holder.get('started')}, "
            f"heartbeat {beat:.0f} s ago")


def _read(dir_fd: int, name: str = LOCK) -> dict | None:
    """The holder's record, None if there is no lock file. A file that is not a lock (damaged, or not
    es-mpi's) reads as a holder known only by the file's age."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, 1 << 16)
        mtime = os.fstat(fd).st_mtime
    finally:
        os.close(fd)
    try:
        holder = json.loads(data)
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) and "pid" in holder else {"heartbeat": mtime}


def _refusal(path: Path, holder: dict, now: float) -> LockError:
    return LockError(f"{path}: in use by {holder_text(holder, now)}; wait for it to end or use another "
                     f"--run-dir (a holder that died is taken over: docs/cluster.md)")


def check_free(run_dir: Path) -> None:
    """Rank 0 at start-up, before it reads or writes anything else: LockError if a live run holds
    `run_dir`. Touches nothing."""
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # no directory (yet): nobody holds it
    try:
        holder = _read(fd)
    finally:
        os.close(fd)
    now = time.time()
    if holder is not None and not gone_because(holder, now):
        raise _refusal(run_dir / LOCK, holder, now)


class RunLock:
    """Held by rank 0 from `take` to `release`; `beat` each generation."""

    def __init__(self, run_dir: RunDirectory) -> None:
        self.dir = run_dir
        self.path = run_dir.path / LOCK
        self.me = {"host": socket.gethostname(), "boot_id": _boot_id(), "pid": os.getpid(),
                   "pid_start": _start_ticks(os.getpid()), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                   "slurm_restart": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S"), "heartbeat": time.time(),
                   "stale_after_s": STALE_MIN_S, "token": uuid.uuid4().hex}
        self.held = False

    @classmethod
    def take(cls, run_dir: RunDirectory) -> tuple[RunLock, str]:
        """The lock and a notice ("" if none) naming the gone holder it replaced; LockError if a live run
        holds it, StorageError if the lock file cannot be written."""
        lock = cls(run_dir)
        notice = ""
        for _ in range(5):
            if lock._create():
                atexit.register(lock.release)
                return lock, notice
            holder, now = _read(run_dir.fd), time.time()
            if holder is None:
                continue  # released in between: try again
            why = gone_because(holder, now)
            if not why:
                raise _refusal(lock.path, holder, now)
            if lock._remove_stale(holder):
                notice = f"{lock.path}: taking over from {holder_text(holder, now)}: {why}"
        raise _refusal(lock.path, _read(run_dir.fd) or {"heartbeat": time.time()}, time.time())

    def _create(self) -> bool:
        """Link a complete lock file into place; False if one is there."""
        private = f".{LOCK}.{self.me['host']}.{self.me['pid']}"
        try:
            self.dir.write(private, json.dumps(self.me).encode())
            try:
                os.link(private, LOCK, src_dir_fd=self.dir.fd, dst_dir_fd=self.dir.fd)
            except FileExistsError:
                return False
            finally:
                os.unlink(private, dir_fd=self.dir.fd)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot write the lock: {describe(exc)}", fix_for(exc)) from None
        self.held = True
        return True

    def _remove_stale(self, holder: dict) -> bool:
        """Move the gone holder's lock aside; if another run replaced it meanwhile, put that one back."""
        aside = f".{LOCK}.stale.{self.me['pid']}"
        try:
            os.rename(LOCK, aside, src_dir_fd=self.dir.fd, dst_dir_fd=self.dir.fd)
        except FileNotFoundError:
            return False
        moved = _read(self.dir.fd, aside)
        if moved != holder:
            try:
                os.link(aside, LOCK, src_dir_fd=self.dir.fd, dst_dir_fd=self.dir.fd)
            except FileExistsError:
                pass
        os.unlink(aside, dir_fd=self.dir.fd)
        return moved == holder

    def beat(self, generation_s: float) -> None:
        """Each generation: check the lock is still ours (StorageError if another run took it over) and
        refresh the heartbeat when HEARTBEAT_S have passed or the generations got longer."""
        holder, now = _read(self.dir.fd), time.time()
        if holder is None or holder.get("token") != self.me["token"]:
            self.held = False
            whom = holder_text(holder, now) if holder else "nobody (the lock file was removed)"
            raise StorageError(f"{self.path}: the run directory is no longer this run's: the lock is held by "
                               f"{whom}; stopped so that two runs do not write it", "make sure only one run "
                               "uses the run directory")
        stale_after = max(STALE_MIN_S, STALE_GENERATIONS * generation_s, self.me["stale_after_s"])
        if now - self.me["heartbeat"] >= HEARTBEAT_S or stale_after > self.me["stale_after_s"]:
            self.me.update(heartbeat=now, stale_after_s=stale_after)
            self.dir.write(LOCK, json.dumps(self.me).encode())

    def release(self) -> None:
        """Remove the lock if it is still ours (at the end of the run, whatever its exit status)."""
        if not self.held:
            return
        self.held = False
        try:
            if (_read(self.dir.fd) or {}).get("token") == self.me["token"]:
                os.unlink(LOCK, dir_fd=self.dir.fd)
        except OSError:
            pass  # the directory went or turned read-only: the lock is then judged stale by the next run

