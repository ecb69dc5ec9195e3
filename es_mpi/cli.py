"""`es-mpi` command line: argument parsing and dispatch to es_mpi.commands; exit statuses (0 done, 2 bad input,
3 stopped by a signal after a checkpoint, 4 stopped by a storage fault, 1 anything else)."""

from __future__ import annotations

from es_mpi.parallel.threads import pin_blas_threads

pin_blas_threads()  # before numpy: every command below imports it

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


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
    t.add_argument("--dry-run", action="store_true",
                   help="print the resolved job (defaults filled, overrides applied) as YAML and exit without training")
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
    sub.add_parser("keys", help="print every job key with its default, check and meaning (Markdown)")
    return p


class _Output:
    """stdout that, once its reader has gone (`es-mpi train ... | head`), sends the rest to /dev/null instead of
    raising BrokenPipeError: a run keeps training and checkpointing, and no command ends in a traceback."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def _quiet(self) -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._quiet()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._quiet()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.stdout = _Output(sys.stdout)
    if args.command == "train":
        from es_mpi.commands.train import dry_run, train_command

        return dry_run(args) if args.dry_run else train_command(args)
    if args.command == "eval":
        from es_mpi.commands.evaluate import eval_command

        return eval_command(args)
    if args.command == "report":
        from es_mpi.commands.report import report_command

        return report_command(args)
    if args.command == "keys":
        from es_mpi.commands.keys import keys_command

        return keys_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
