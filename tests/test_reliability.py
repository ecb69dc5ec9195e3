"""Faults and bad input never lose a run: corrupt checkpoints, crashes mid-write, failing ranks, NaNs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from helpers import ROOT, mpiexec, read_theta, run_cli, tiny_job, write_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from es_mpi.engine.loop import TrainingError
from es_mpi.parallel.comm import LocalComm
from es_mpi.runs.job import ConfigError, Job, job_from_dict, load_job

TESTS = Path(__file__).parent
FAULTY_ENV = {"PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

# --- the loader accepts or raises ConfigError, never anything else --------------------------------------

KEYS = ["env", "policy", "es", "optimizer", "run", "id", "kwargs", "episode_cap", "adaptive", "start", "hidden",
        "pairs", "sigma", "lr", "kind", "seed", "generations", "timesteps", "actions", "bogus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["Hopper-v5", "adam", "env", "uniform:10", "tanh"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
                      max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_random_job_dictionaries_are_accepted_or_refused_cleanly(raw):
    try:
        assert isinstance(job_from_dict(raw, "fuzz.yaml"), Job)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bytes_are_accepted_or_refused_cleanly(tmp_path, data):
    path = tmp_path / "job.yaml"
    path.write_bytes(data)
    try:
        load_job(path)
    except ConfigError:
        pass


# --- checkpoints -------------------------------------------------------------------------------------


def test_corrupt_checkpoint_falls_back_to_the_previous_one_with_auto(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 3, "checkpoint_every": 1}))
    run, whole = tmp_path / "run", tmp_path / "whole"
    assert run_cli(["train", path, "--run-dir", run]).returncode == 0
    assert run_cli(["train", path, "--run-dir", whole]).returncode == 0
    with h5py.File(run / "checkpoint.prev.h5") as f:
        assert f.attrs["generation"] == 2
    with h5py.File(run / "checkpoint.h5") as f:
        chunk = f["theta"].id.get_chunk_info(0)
    data = bytearray((run / "checkpoint.h5").read_bytes())
    data[chunk.byte_offset + 8] ^= 0xFF  # one flipped byte inside the stored parameters
    (run / "checkpoint.h5").write_bytes(bytes(data))
    must = run_cli(["train", path, "--run-dir", run, "--resume", "must"])
    assert must.returncode == 2 and "checkpoint.h5" in must.stderr and "Traceback" not in must.stderr
    auto = run_cli(["train", path, "--run-dir", run, "--resume", "auto", "--set", "run.generations=3"])
    assert auto.returncode == 0, auto.stderr
    assert "checkpoint.prev.h5" in auto.stderr and "generation 2" in auto.stderr
    assert np.array_equal(read_theta(run), read_theta(whole))


def test_kill_9_during_a_checkpoint_write_leaves_a_loadable_checkpoint(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 4, "checkpoint_every": 1}))
    run, whole = tmp_path / "run", tmp_path / "whole"
    assert run_cli(["train", path, "--run-dir", whole]).returncode == 0
    env = {**os.environ, "ES_MPI_TEST_CHECKPOINT_PAUSE": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "es_mpi", "train", str(path), "--run-dir", str(run)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # Wait for the second write: the first checkpoint exists and a new temporary file is being written.
    while not ((run / "checkpoint.h5").exists() and (run / ".checkpoint.h5.tmp").exists()):
        assert time.time() < deadline and proc.poll() is None, "training never reached its second checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with h5py.File(run / "checkpoint.h5") as f:
        assert f.attrs["generation"] >= 1 and f["theta"][...].size > 0
    resumed = run_cli(["train", path, "--run-dir", run, "--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr
    assert np.array_equal(read_theta(run), read_theta(whole))


def test_newer_schema_is_refused(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 1}))
    run = tmp_path / "run"
    assert run_cli(["train", path, "--run-dir", run]).returncode == 0
    with h5py.File(run / "checkpoint.h5", "a") as f:
        f.attrs["schema_version"] = 99
    proc = run_cli(["train", path, "--run-dir", run, "--resume", "must"])
    assert proc.returncode == 2 and "schema_version 99" in proc.stderr


# --- ranks and numbers -------------------------------------------------------------------------------


def faulty_job(tmp_path, fault: str, on_rank: int = 1) -> Path:
    """Enough generations of 100-step episodes that, with dynamic assignment, every rank runs some."""
    job = tiny_job(run={"generations": 10})
    job["env"] = {"id": "faulty_env:Faulty-v0", "kwargs": {"fault": fault, "on_rank": on_rank, "at_step": 30}}
    return write_job(tmp_path / "faulty.yaml", job)


@pytest.mark.mpi
@pytest.mark.parametrize("rank", [0, 1])
def test_exception_on_one_rank_aborts_all_ranks_with_its_message_once(tmp_path, rank):
    proc = run_cli(["train", faulty_job(tmp_path, "raise", rank), "--run-dir", tmp_path / "run"], ranks=2,
                   timeout=60, env=FAULTY_ENV)
    assert proc.returncode not in (0, 2, 3)
    assert proc.stderr.count("RuntimeError: faulty env: injected failure") == 1, proc.stderr
    assert proc.stderr.count("aborting all ranks") == 1
    assert f"rank {rank} of 2 failed, aborting all ranks" in proc.stderr


@pytest.mark.mpi
def test_a_rank_killed_by_the_system_ends_the_job(tmp_path):
    start = time.time()
    proc = run_cli(["train", faulty_job(tmp_path, "kill"), "--run-dir", tmp_path / "run"], ranks=2, timeout=60,
                   env=FAULTY_ENV)
    assert proc.returncode != 0 and time.time() - start < 60


@pytest.mark.mpi
def test_nan_return_is_reported_with_episode_and_generation_not_used(tmp_path):
    run = tmp_path / "run"
    proc = run_cli(["train", faulty_job(tmp_path, "nan"), "--run-dir", run], ranks=2, timeout=60, env=FAULTY_ENV)
    assert proc.returncode == 1
    assert proc.stderr.count("non-finite") == 1 and "generation 0: episode" in proc.stderr, proc.stderr
    assert not (run / "checkpoint.h5").exists()


class SplitBrainComm(LocalComm):
    """Two 'ranks' whose parameter checksums disagree, as after a silent replica drift."""

    size = 2

    def gather_blocks(self, local):
        other = np.array(local, dtype=np.float64, copy=True)
        other[1] += 1  # the checksum field of the header
        return [np.array(local, dtype=np.float64), other]


def test_replica_drift_stops_the_run_with_a_clear_error(tmp_path):
    from es_mpi.engine.context import build_context
    from es_mpi.engine.loop import generation
    from es_mpi.envs.make import make_env
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.state import initial_state

    job = load_job(write_job(tmp_path / "j.yaml", tiny_job(es={"pairs": 2})))
    env, limit = make_env(job.env)
    policy = make_policy(job.policy, env)
    ctx = build_context(job, SplitBrainComm(), env, limit, policy)
    with pytest.raises(TrainingError, match="drifted"):
        generation(ctx, initial_state(ctx.strategy), 0)


# --- security basics ---------------------------------------------------------------------------------


def test_no_pickle_no_eval_no_unsafe_yaml_in_the_package():
    for source in (ROOT / "es_mpi").rglob("*.py"):
        text = source.read_text()
        for banned in ("import pickle", "yaml.load(", "eval(", "exec(", "comm.bcast(", "comm.allgather(",
                       "comm.gather(", "comm.send(", "comm.recv("):
            assert banned not in text, f"{source.name} uses {banned}"


def test_yaml_python_tags_do_not_execute(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"env": {"id": "Hopper-v5"}}) +
                    f"run: !!python/object/apply:os.system ['touch {marker}']\n")
    proc = run_cli(["train", path, "--run-dir", tmp_path / "run"])
    assert proc.returncode == 2 and not marker.exists()


def test_mpiexec_is_available_for_the_fault_tests():
    assert mpiexec()
