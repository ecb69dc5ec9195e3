"""`es-mpi train`: rank 0 validates the job and opens the run directory, every rank gets the start state,
then the engine trains (exit 0 done, 2 bad input, 3 stopped by a signal after a checkpoint)."""

from __future__ import annotations

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
    """Rank 0: validate everything and open the run directory before any rank does MPI work."""
    import numpy as np

    from es_mpi.engine.loop import initial_state
    from es_mpi.envs.make import make_env
    from es_mpi.parallel.comm import check_mpi_env
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import ConfigError, load_job
    from es_mpi.runs.rundir import default_run_dir, open_run

    check_mpi_env()
    job = load_job(args.job, args.overrides)
    env, limit = make_env(job.env, args.job)
    policy = make_policy(job.policy, env, source=args.job)
    if job.es.noise_table_size < policy.num_params + 1:
        raise ConfigError(
            f"{args.job}: es.noise_table_size {job.es.noise_table_size:,} is smaller than the policy's "
            f"{policy.num_params:,} parameters; raise it (the paper used 250000000)"
        )
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.job, job)
    state, attrs, notice = open_run(run_dir, job, args.resume)
    resumed = state is not None
    if state is None:
        state = initial_state(job, policy, limit)
    elif state.theta.size != policy.num_params:
        raise ConfigError(f"{run_dir}: checkpoint has {state.theta.size} parameters, the job's policy "
                          f"{policy.num_params}; use another --run-dir")
    if job.policy.kind == "cnn" and state.ref_batch is None:
        from dataclasses import replace

        from es_mpi.policies.reference_batch import collect_reference_batch

        state = replace(state, ref_batch=collect_reference_batch(env, job.policy.ref_batch, job.run.seed))
    if notice:
        print(f"es-mpi: notice: {notice}", file=sys.stderr, flush=True)
    header = {
        "job": job.to_dict(), "source": args.job, "run_dir": str(run_dir), "resumed": resumed,
        "generation": state.generation, "timesteps": state.timesteps, "episodes": state.episodes,
        "episode_cap": state.episode_cap, "wall_s": state.wall_s, "opt_step": state.opt.step,
        "obs_count": state.obs.count, "noise_fingerprint": attrs.get("noise_fingerprint"),
    }
    arrays = {"theta": state.theta, "m": state.opt.m, "v": state.opt.v, "obs_sum": state.obs.total,
              "obs_sumsq": state.obs.total_sq,
              "ref_batch": state.ref_batch if state.ref_batch is not None else np.zeros(0, np.uint8)}
    return header, arrays


def train_command(args) -> int:
    from es_mpi.engine.loop import TrainingError
    from es_mpi.engine.signals import StopFlag
    from es_mpi.parallel.comm import get_comm, load_on_root
    from es_mpi.runs.job import ConfigError

    stop = StopFlag().install()  # early: Slurm's USR1 during start-up must not kill a rank
    comm = get_comm()
    if comm.size > 1:
        _install_abort_hook(comm)
    header, got = load_on_root(comm, lambda: _startup(args), ("theta", "m", "v", "obs_sum", "obs_sumsq", "ref_batch"))
    if "error" in header:
        if comm.rank == 0:
            print(f"es-mpi: error: {header['error']}", file=sys.stderr)
        return 2
    try:
        return _train_all_ranks(comm, header, got, stop)
    except (ConfigError, TrainingError) as exc:
        # Raised alike on every rank (same inputs, same gathered data), so every rank returns here.
        if comm.rank == 0:
            print(f"es-mpi: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


def _train_all_ranks(comm, header: dict, got: dict, stop) -> int:
    from es_mpi.core.noise import noise_fingerprint
    from es_mpi.core.obs_stats import ObsStats
    from es_mpi.core.optimizers import OptimizerState
    from es_mpi.engine.loop import build_context, train
    from es_mpi.envs.make import make_env
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import ConfigError, job_from_dict
    from es_mpi.runs.rundir import Recorder
    from es_mpi.runs.state import TrainState

    job = job_from_dict(header["job"], header["source"])
    state = TrainState(
        header["generation"], header["timesteps"], header["episodes"], header["episode_cap"], header["wall_s"],
        got["theta"], OptimizerState(header["opt_step"], got["m"], got["v"]),
        ObsStats(header["obs_count"], got["obs_sum"], got["obs_sumsq"]),
        got["ref_batch"] if got["ref_batch"].size else None,
    )
    env, limit = make_env(job.env, header["source"])
    policy = make_policy(job.policy, env, state.ref_batch, header["source"])
    ctx = build_context(job, comm, env, limit, policy)
    fingerprint = noise_fingerprint(ctx.noise)
    if header["resumed"] and header["noise_fingerprint"] not in (None, fingerprint):
        raise ConfigError(f"{header['run_dir']}: the checkpoint was made with a different noise table "
                          "(numpy's generator changed?); results would not continue the run")
    record = None
    if comm.rank == 0:
        run_dir = Path(header["run_dir"])
        identity = {"noise_fingerprint": fingerprint, "num_params": policy.num_params,
                    "env_id": job.env.id}
        record = Recorder(run_dir, job, state, identity)
        what = f"resuming at generation {state.generation}" if header["resumed"] else "new run"
        print(f"es-mpi: {what} in {run_dir}: {job.env.id}, {policy.num_params:,} parameters, "
              f"{job.es.pairs} pairs/generation, {comm.size} rank(s)", flush=True)
    code, state = train(ctx, state, record, stop)
    if record:
        record.close(state, code)
    return code
