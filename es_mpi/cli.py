"""`es-mpi` command line: argument parsing, start-up broadcast, exit statuses (0 done, 2 bad input,
3 stopped by a signal after a checkpoint, 1 anything else)."""

from __future__ import annotations

import os

# One BLAS thread per rank: ranks already fill the cores, extra threads only contend.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="es-mpi", description="MPI Evolution Strategies trainer")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a policy from a job file (under mpiexec, srun, or alone)")
    t.add_argument("job", help="YAML job file, e.g. jobs/default.yaml")
    t.add_argument("--run-dir", help="output directory (default results/runs/<job>-seed<seed>)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a job key, e.g. --set es.sigma=0.05 (value parsed as YAML); repeatable")
    t.add_argument("--resume", choices=["never", "auto", "must"], default="never",
                   help="never: refuse an existing run (default); auto: continue if a checkpoint exists; "
                   "must: fail without one")
    e = sub.add_parser("eval", help="evaluate a run's checkpoint over N episodes (under mpiexec, or alone)")
    e.add_argument("run_dir", metavar="RUN_DIR", help="run directory holding checkpoint.h5")
    e.add_argument("--episodes", type=int, default=10, metavar="N", help="episodes (default 10)")
    e.add_argument("--video", metavar="FILE", help="render episode 0 to FILE (.mp4 or .gif)")
    e.add_argument("--csv", metavar="FILE", help="write each episode's seed, return and length to FILE")
    r = sub.add_parser("report", help="plots and summary tables from the metrics.h5 of runs, live ones too")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories; seeds of one job are grouped")
    r.add_argument("--out", default="results/report", metavar="DIR", help="output directory (default %(default)s)")
    r.add_argument("--threshold", dest="thresholds", action="append", default=[], metavar="ENV_ID=RETURN",
                   help="evaluation return that counts as solved, e.g. HalfCheetah-v5=3000 (default: "
                   "gymnasium's reward_threshold, or the paper's); repeatable")
    return p


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

    from .config import ConfigError, load_job
    from .envs import make_env
    from .mpi import check_mpi_env
    from .policy import make_policy
    from .runs import default_run_dir, open_run
    from .trainer import initial_state

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

        from .reference_batch import collect_reference_batch

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
    from .config import ConfigError
    from .mpi import get_comm, load_on_root
    from .signals import StopFlag
    from .trainer import TrainingError

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
    from .config import ConfigError, job_from_dict
    from .envs import make_env
    from .noise import noise_fingerprint
    from .obs_norm import ObsStats
    from .optimizers import OptimizerState
    from .policy import make_policy
    from .runs import Recorder
    from .state import TrainState
    from .trainer import build_context, train

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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        return train_command(args)
    if args.command == "eval":
        from .evaluate import eval_command

        return eval_command(args)
    if args.command == "report":
        from .report import report_command

        return report_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
