"""The Slurm job scripts on a real (private, single-node) Slurm cluster: the shrunk humanoid script runs,
a signalled job checkpoints, is requeued and ends bit-identical to an uninterrupted run, and the sweep array
writes one run per index. Plus quick checks of the scripts that need no cluster.

The cluster is tests/cluster/start_slurm.sh with its own directory and ports (so a developer's cluster on
the defaults is never touched) and 18 declared CPUs, so that the scripts' `--ntasks-per-node=18` fits
(`sbatch -N1 -n2` treats it as a maximum, but Slurm still wants 18 CPUs per node)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from helpers import ROOT, read_theta

pytestmark = pytest.mark.slurm

CLUSTER = ROOT / "tests" / "cluster"
SCRIPTS = ["humanoid_1440.sh", "single_node.sh", "atari_720.sh", "sweep.sh"]
# A Humanoid generation of a few tenths of a second on 2 cores.
SHRINK = ["--set", "es.pairs=4", "--set", "es.noise_table_size=2000000", "--set", "policy.hidden=[16]",
          "--set", "run.eval_every=0"]
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE"}
SLURM_PACKAGES = ("sbatch", "scontrol", "slurmctld", "slurmd", "munged")


def _slurm_installed() -> bool:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return all(shutil.which(name, path=path) for name in SLURM_PACKAGES)


@pytest.fixture(scope="session")
def slurm():
    """Start the private cluster (installing Slurm if needed), export its environment, stop it at the end."""
    if os.geteuid() != 0:
        pytest.skip("the Slurm tests need root (slurmd runs jobs as the submitting user)")
    if not _slurm_installed() and not shutil.which("apt-get"):
        pytest.skip("Slurm is not installed and there is no apt-get to install it (Debian/Ubuntu only)")
    cluster_env = {
        "ES_MPI_SLURM_DIR": os.environ.get("ES_MPI_TEST_SLURM_DIR", "/tmp/es-mpi-slurm-pytest"),
        "ES_MPI_SLURMCTLD_PORT": os.environ.get("ES_MPI_TEST_SLURMCTLD_PORT", "16837"),
        "ES_MPI_SLURMD_PORT": os.environ.get("ES_MPI_TEST_SLURMD_PORT", "16838"),
        "ES_MPI_SLURM_CPUS": "18",
    }
    start = subprocess.run(["bash", str(CLUSTER / "start_slurm.sh")], env={**os.environ, **cluster_env},
                           capture_output=True, text=True, timeout=600)
    if start.returncode != 0:
        if not _slurm_installed():
            pytest.skip(f"could not install Slurm with apt-get: {start.stderr[-2000:]}")
        pytest.fail(f"start_slurm.sh failed ({start.returncode}):\n{start.stderr[-4000:]}")
    env_sh = Path(cluster_env["ES_MPI_SLURM_DIR"]) / "env.sh"
    exported = dict(re.findall(r"^export (\w+)=(.*)$", env_sh.read_text(), re.M))
    assert "SLURM_CONF" in exported, env_sh.read_text()
    with pytest.MonkeyPatch.context() as mp:
        # Run as if from a plain login shell: no outer Slurm job (pytest inside `srun`) and no user settings
        # of the scripts leak in.
        for var in list(os.environ):
            if (var.startswith("SLURM_") or var.startswith("SBATCH_") or var.startswith("ES_MPI_")
                    or var.startswith("PMI_")):
                mp.delenv(var)
        for var, value in {**cluster_env, **exported}.items():
            mp.setenv(var, value)
        # The jobs run this interpreter, i.e. the test venv (the .venv of `make test` on CI).
        mp.setenv("ES_MPI_PYTHON", sys.executable)
        yield exported
        stop = subprocess.run(["bash", str(CLUSTER / "stop_slurm.sh")], capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stderr


def sbatch(args: list[str], **env: str) -> str:
    """Submit from the repository root (the scripts find lib.sh through the submit directory)."""
    proc = subprocess.run(["sbatch", "--parsable", *map(str, args)], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def job_records(job_id: str) -> list[dict]:
    """`scontrol show job -o` (there is no sacct here): one dict per job, or per array task."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    records = []
    for line in proc.stdout.splitlines():
        rec: dict[str, str] = {}
        for key, value in re.findall(r"(?:^|\s)(\w+)=(\S*)", line):
            rec.setdefault(key, value)  # the first one: Command= may carry `--set a.b=c` arguments
        if "JobId" in rec:
            records.append(rec)
    return records


def output_of(paths) -> str:
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')}" for p in sorted(paths) if p.exists())


def wait_for(job_id: str, done, timeout: float, logs) -> list[dict]:
    """Poll once a second until done(records) holds; cancel the job and fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    records: list[dict] = []
    while time.monotonic() < deadline:
        records = job_records(job_id)
        if records and done(records):
            return records
        time.sleep(1)
    subprocess.run(["scancel", job_id], timeout=30)
    pytest.fail(f"job {job_id} not done after {timeout:.0f} s: {records}\n{output_of(logs())}")


def finished(records: list[dict]) -> bool:
    return all(r["JobState"] in FINAL for r in records)


def checkpoint_generation(run_dir: Path) -> int:
    with h5py.File(run_dir / "checkpoint.h5", "r") as f:
        return int(f.attrs["generation"])


def test_shrunk_humanoid_script_completes(slurm, tmp_path):
    results = tmp_path / "results"
    job_id = sbatch(["-N1", "-n2", f"--output={tmp_path}/slurm-%j.out", "slurm/humanoid_1440.sh",
                     "--set", "run.generations=3", *SHRINK], ES_MPI_RESULTS=str(results))
    logs = lambda: tmp_path.glob("slurm-*.out")  # noqa: E731
    (rec,) = wait_for(job_id, finished, 120, logs)
    text = output_of(logs())
    assert (rec["JobState"], rec["ExitCode"]) == ("COMPLETED", "0:0"), text
    # The default run directory: the job name (from the script's header) and the seed.
    run_dir = results / "humanoid_1440-seed0"
    assert checkpoint_generation(run_dir) == 3, text
    assert "2 rank(s)" in text and "done: generation 3" in text, text


def test_signalled_job_checkpoints_requeues_and_matches_an_uninterrupted_run(slurm, tmp_path):
    run_dir, ref_dir = tmp_path / "run", tmp_path / "ref"
    args = ["--set", "run.generations=20", *SHRINK]
    log = tmp_path / "job.out"
    job_id = sbatch(["-N1", "-n2", f"--output={log}", "slurm/humanoid_1440.sh", *args],
                    ES_MPI_RUN_DIR=str(run_dir))
    # The reference, uninterrupted and outside Slurm (results do not depend on the rank count); it runs
    # while the job waits to be requeued.
    ref = subprocess.Popen([sys.executable, "-m", "es_mpi", "train", "jobs/humanoid.yaml", "--run-dir", str(ref_dir),
                            *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Signal as Slurm's --signal=USR1@N would, but at a known moment: once generation 1 is done.
        deadline = time.monotonic() + 90
        while not re.search(r"^gen ", log.read_text() if log.exists() else "", re.M):
            assert time.monotonic() < deadline, f"no generation line after 90 s\n{output_of([log])}"
            assert not finished(job_records(job_id) or [{"JobState": "RUNNING"}]), output_of([log])
            time.sleep(0.1)
        subprocess.run(["scancel", "-s", "USR1", job_id], check=True, timeout=30)
        (rec,) = wait_for(job_id, lambda r: int(r[0]["Restarts"]) >= 1 and finished(r), 150, lambda: [log])
        ref_out, _ = ref.communicate(timeout=120)
    finally:
        if ref.poll() is None:
            ref.kill()
    text = log.read_text()
    assert ref.returncode == 0, ref_out
    assert (rec["JobState"], rec["ExitCode"], rec["Restarts"]) == ("COMPLETED", "0:0", "1"), text
    stopped = re.search(r"stopped by SIGUSR1; resume with --resume auto: generation (\d+)", text)
    assert stopped and 1 <= int(stopped[1]) < 20, text
    assert "Exited with exit code 3" in text and "requeued job" in text, text
    assert f"resuming at generation {stopped[1]}" in text and "done: generation 20" in text, text
    assert checkpoint_generation(run_dir) == 20
    assert np.array_equal(read_theta(run_dir), read_theta(ref_dir))
    with h5py.File(run_dir / "metrics.h5") as f:
        assert list(f["generation"][...]) == list(range(20))


def test_sweep_array_writes_one_run_per_index(slurm, tmp_path):
    results = tmp_path / "results"
    tasks, seeds = ["hopper", "inverted_pendulum"], [0, 1]
    job_id = sbatch(["--array=0-3", "-N1", "-n1", f"--output={tmp_path}/slurm-%A_%a.out", "slurm/sweep.sh",
                     "--set", "run.generations=2", *SHRINK],
                    ES_MPI_RESULTS=str(results), ES_MPI_SWEEP_TASKS=" ".join(tasks),
                    ES_MPI_SWEEP_SEEDS=" ".join(map(str, seeds)))
    logs = lambda: tmp_path.glob("slurm-*.out")  # noqa: E731
    records = wait_for(job_id, lambda r: len(r) == 4 and finished(r), 150, logs)
    text = output_of(logs())
    assert sorted(r.get("ArrayTaskId") for r in records) == ["0", "1", "2", "3"], records
    assert all((r["JobState"], r["ExitCode"]) == ("COMPLETED", "0:0") for r in records), text
    expected = {f"sweep-{task}-seed{seed}": (task, seed) for task in tasks for seed in seeds}
    assert sorted(p.name for p in results.iterdir()) == sorted(expected), text
    for name, (task, seed) in expected.items():
        assert checkpoint_generation(results / name) == 2, text
        stored = yaml.safe_load((results / name / "job.yaml").read_text())
        assert stored["run"]["seed"] == seed
        assert stored["env"]["id"] == yaml.safe_load((ROOT / "jobs" / f"{task}.yaml").read_text())["env"]["id"]
    assert not np.array_equal(read_theta(results / "sweep-hopper-seed0"), read_theta(results / "sweep-hopper-seed1"))


# --- The scripts themselves; no cluster needed. ---

def dry_run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """A script's set-up and command line without Slurm (ES_MPI_DRY_RUN=1), as bash would run it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ES_MPI_"))}
    full = {**clean, "ES_MPI_PYTHON": sys.executable, "ES_MPI_DRY_RUN": "1", **env}
    return subprocess.run(["bash", f"slurm/{script}", *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=60)


def test_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    proc = subprocess.run(["shellcheck", "-x", *(f"slurm/{s}" for s in SCRIPTS), "slurm/lib.sh"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_headers_ask_for_signal_requeue_and_appended_output(script):
    header = "\n".join(line for line in (ROOT / "slurm" / script).read_text().splitlines()
                       if line.startswith("#SBATCH"))
    for option in ("--nodes=", "--ntasks-per-node=", "--cpus-per-task=1", "--time=", "--requeue",
                   "--open-mode=append", "--output=slurm-%x-"):
        assert f"#SBATCH {option}" in header, (script, option)
    # To the ranks (no B:), which act on it; shortly before the limit.
    assert re.search(r"^#SBATCH --signal=USR1@\d+$", header, re.M), script


def test_shrunk_command_line_passes_arguments_on_and_resumes():
    proc = dry_run("humanoid_1440.sh", "--set", "run.seed=4", "--set", "es.sigma=0.05")
    assert proc.returncode == 0, proc.stderr
    assert "run dir results/runs/humanoid_1440-seed4" in proc.stderr
    assert (f"srun --mpi=pmi2 {sys.executable} -m es_mpi train jobs/humanoid.yaml --run-dir "
            "results/runs/humanoid_1440-seed4 --resume auto --set run.seed=4 --set es.sigma=0.05") in proc.stderr
    other = dry_run("humanoid_1440.sh", ES_MPI_RUN_DIR="/scratch/h", ES_MPI_SRUN_MPI="",
                    ES_MPI_SRUN_ARGS="--cpu-bind=cores -l")
    assert f"srun --cpu-bind=cores -l {sys.executable} -m es_mpi train jobs/humanoid.yaml --run-dir /scratch/h " \
           "--resume auto" in other.stderr, other.stderr


def test_bad_job_and_missing_job_file_fail_before_srun():
    bad = dry_run("humanoid_1440.sh", "--set", "es.sigma=-1")
    assert bad.returncode == 2 and "es.sigma" in bad.stderr and "srun" not in bad.stderr, bad.stderr
    missing = dry_run("single_node.sh", ES_MPI_JOB="jobs/nope.yaml")
    assert missing.returncode == 2 and "jobs/nope.yaml not found" in missing.stderr, missing.stderr
    atari = dry_run("atari_720.sh")
    assert atari.returncode == 0 and "train jobs/pong.yaml" in atari.stderr, atari.stderr
    outside = subprocess.run(["bash", "slurm/single_node.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
                                  "ES_MPI_PYTHON": sys.executable})
    assert outside.returncode == 2 and "not inside a Slurm job" in outside.stderr, outside.stderr


def test_sweep_maps_array_index_to_task_and_seed():
    env = {"ES_MPI_SWEEP_TASKS": "hopper walker2d swimmer", "ES_MPI_SWEEP_SEEDS": "0 1"}
    dirs = []
    for index in range(6):
        proc = dry_run("sweep.sh", SLURM_ARRAY_TASK_ID=str(index), SLURM_JOB_NAME="sw", **env)
        assert proc.returncode == 0, proc.stderr
        dirs.append(re.search(r"run dir results/runs/(\S+)", proc.stderr)[1])
    assert dirs == ["sw-hopper-seed0", "sw-hopper-seed1", "sw-walker2d-seed0", "sw-walker2d-seed1",
                    "sw-swimmer-seed0", "sw-swimmer-seed1"]
    beyond = dry_run("sweep.sh", SLURM_ARRAY_TASK_ID="6", **env)
    assert beyond.returncode == 2 and "0-5" in beyond.stderr, beyond.stderr
    shared = dry_run("sweep.sh", SLURM_ARRAY_TASK_ID="0", ES_MPI_RUN_DIR="/tmp/x", **env)
    assert shared.returncode == 2 and "ES_MPI_RUN_DIR" in shared.stderr, shared.stderr


def test_atari_games_get_their_own_default_run_directories():
    pong = dry_run("atari_720.sh")
    breakout = dry_run("atari_720.sh", ES_MPI_JOB="jobs/breakout.yaml")
    assert pong.returncode == 0 and breakout.returncode == 0, pong.stderr + breakout.stderr
    assert "run dir results/runs/atari_720-pong-seed0" in pong.stderr
    assert "run dir results/runs/atari_720-breakout-seed0" in breakout.stderr
    assert "train jobs/breakout.yaml --run-dir results/runs/atari_720-breakout-seed0" in breakout.stderr
