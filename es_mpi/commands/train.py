"""`es-mpi train`: rank 0 validates the job and opens the run directory, every rank gets the start state,
then the engine trains (exit 0 done, 2 bad input, 3 stopped by a signal after a checkpoint, 4 stopped by a
storage fault: es_mpi.runs.storage)."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path


def _install_abort_hook(comm) -> None:
    """An exception on one rank must end all ranks, not leave them blocked in a collective."""

    def hook(exc_type, exc, tb):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a further Ctrl-C must not stop the abort itself
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(f"es-mpi: rank {comm.rank} of {comm.size} failed, aborting all ranks:\n{text}")
        comm.abort(1)

    sys.excepthook = hook


def _startup(args) -> tuple[dict, dict]:
    """Rank 0: validate everything and open the run directory before any rank does MPI work. Returns the
    start-up header (JSON) and the start state's arrays."""
    from dataclasses import replace

    from es_mpi.envs.make import make_env
    from es_mpi.parallel.comm import check_mpi_env
    from es_mpi.policies.make import make_policy
    from es_mpi.policies.reference_batch import collect_reference_batch
    from es_mpi.runs.job import ConfigError, load_job
    from es_mpi.runs.lock import check_free
    from es_mpi.runs.rundir import default_run_dir, open_run
    from es_mpi.runs.state import initial_state, load_state, save_state
    from es_mpi.strategies import STRATEGIES

    check_mpi_env()
    job = load_job(args.job, args.overrides)
    if job.run.tensorboard:
        from es_mpi.runs.tensorboard import require_writer

        require_writer(args.job)
    env, limit = make_env(job.env, args.job)
    policy = make_policy(job.policy, env, source=args.job)
    if job.es.noise_table_size < policy.num_params + 1:
        raise ConfigError(
            f"{args.job}: es.noise_table_size {job.es.noise_table_size:,} is smaller than the policy's "
            f"{policy.num_params:,} parameters; raise it (the paper used 250000000)"
        )
    strategy = STRATEGIES[job.strategy.kind](job, policy, limit)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.job, job)
    check_free(run_dir)  # a run directory in use: refused before anything is read or written
    saved, attrs, notice = open_run(run_dir, job, args.resume)
    state = initial_state(strategy) if saved is None else load_state(saved, strategy, str(run_dir))
    size = strategy.bases(state.strategy)[0].size
    if size != policy.num_params:
        raise ConfigError(f"{run_dir}: checkpoint has {size} parameters, the job's policy "
                          f"{policy.num_params}; use another --run-dir")
    if job.policy.kind == "cnn" and state.ref_batch is None:
        state = replace(state, ref_batch=collect_reference_batch(env, job.policy.ref_batch, job.run.seed))
    if notice:
        print(f"es-mpi: notice: {notice}", file=sys.stderr, flush=True)
    start = save_state(state, strategy)
    header = {"job": job.to_dict(), "source": args.job, "run_dir": str(run_dir), "resumed": saved is not None,
              "noise_fingerprint": attrs.get("noise_fingerprint"), "scalars": start.scalars,
              "arrays": list(start.arrays)}
    return header, start.arrays


def dry_run(args) -> int:
    """`es-mpi train JOB --dry-run`: the job as a run would use it, as YAML on stdout (a job file itself),
    after the checks a run makes before it starts (job, env, policy); nothing is written."""
    from es_mpi.envs.make import make_env
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import ConfigError, load_job

    try:
        job = load_job(args.job, args.overrides)
        env, _ = make_env(job.env, args.job)
        policy = make_policy(job.policy, env, source=args.job)
    except ConfigError as exc:
        print(f"es-mpi: error: {exc}", file=sys.stderr)
        return 2
    print(f"# {args.job} as es-mpi train runs it: {policy.num_params:,} parameters", file=sys.stderr)
    print(job.to_yaml(), end="")
    return 0


def train_command(args) -> int:
    from es_mpi.engine.loop import TrainingError
    from es_mpi.engine.signals import StopFlag
    from es_mpi.parallel.comm import get_comm, load_on_root
    from es_mpi.runs.job import ConfigError

    stop = StopFlag().install()  # early: Slurm's USR1 during start-up must not kill a rank
    comm = get_comm()
    if comm.size > 1:
        _install_abort_hook(comm)
    arrays: dict = {}

    def load() -> tuple[dict, dict]:
        header, start = _startup(args)
        arrays.update(start)
        return header, {}

    header, _ = load_on_root(comm, load, ())
    if "error" in header:
        if comm.rank == 0:
            print(f"es-mpi: error: {header['error']}", file=sys.stderr)
        return 2
    got = {name: comm.bcast_array(arrays.get(name)) for name in header["arrays"]}
    try:
        return _train_all_ranks(comm, header, got, stop)
    except (ConfigError, TrainingError) as exc:
        # Raised alike on every rank (same inputs, same gathered data), so every rank returns here.
        if comm.rank == 0:
            print(f"es-mpi: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


def _train_all_ranks(comm, header: dict, got: dict, stop) -> int:
    from es_mpi.core.noise import noise_fingerprint
    from es_mpi.engine.context import build_context
    from es_mpi.engine.loop import train
    from es_mpi.envs.make import make_env
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import ConfigError, job_from_dict
    from es_mpi.runs.lock import LockError
    from es_mpi.runs.rundir import Recorder
    from es_mpi.runs.state import load_state
    from es_mpi.runs.storage import EXIT_STORAGE, StorageError
    from es_mpi.strategies.base import Saved

    job = job_from_dict(header["job"], header["source"])
    env, limit = make_env(job.env, header["source"])
    policy = make_policy(job.policy, env, got.get("ref_batch"), header["source"])
    ctx = build_context(job, comm, env, limit, policy)
    state = load_state(Saved(got, header["scalars"]), ctx.strategy, header["run_dir"])
    fingerprint = noise_fingerprint(ctx.noise)
    if header["resumed"] and header["noise_fingerprint"] not in (None, fingerprint):
        raise ConfigError(f"{header['run_dir']}: the checkpoint was made with a different noise table "
                          "(numpy's generator changed?); results would not continue the run")
    record, failure, status = None, "", EXIT_STORAGE
    if comm.rank == 0:
        run_dir = Path(header["run_dir"])
        identity = {"noise_fingerprint": fingerprint, "num_params": policy.num_params,
                    "env_id": job.env.id}
        try:
            record = Recorder(run_dir, job, ctx.strategy, state, identity, header["resumed"])
        except (StorageError, LockError) as exc:
            # LockError: a run that started since the check in _startup holds the directory now.
            failure, status = str(exc), 2 if isinstance(exc, LockError) else EXIT_STORAGE
            print(f"es-mpi: error: {failure}", file=sys.stderr, flush=True)
        else:
            what = f"resuming at generation {state.generation}" if header["resumed"] else "new run"
            print(f"es-mpi: {what} in {run_dir}: {job.env.id}, {job.strategy.kind}, {policy.num_params:,} "
                  f"parameters, {comm.size} rank(s); episodes: {ctx.path}", flush=True)
    failed = comm.bcast_json({"failure": failure, "status": status})
    if failed["failure"]:
        return failed["status"]
    code, state = train(ctx, state, record, stop)
    if record and not record.close(state, code):
        _exit_skipping_cleanup(code)
    return code


def _exit_skipping_cleanup(code: int) -> None:
    """End the process now: after a write HDF5 saw fail, its clean-up at exit would crash (segmentation
    fault) or print tracebacks. The other ranks have already agreed on `code`."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        from mpi4py import MPI

        if MPI.Is_initialized() and not MPI.Is_finalized():
            MPI.Finalize()
    except ImportError:
        pass
    os._exit(code)
