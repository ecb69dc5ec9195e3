"""The deceptive tasks' files: the U-maze jobs train with novelty search and archive the point's final
positions (needs the maze extra, gymnasium-robotics), and the deceptive Humanoid model is gymnasium's
Humanoid-v5 model with three walls added and nothing else."""

import re
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
from helpers import ROOT, run_cli

from es_mpi.runs.job import load_job

MODEL = ROOT / "jobs" / "models" / "deceptive_humanoid.xml"


def test_the_deceptive_humanoid_model_is_humanoid_v5_plus_three_walls():
    ours = MODEL.read_text()
    gymnasium_model = Path(gym.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml"
    without = re.sub(r"[ ]*<!-- es-mpi:.*?-->\n", "", ours, flags=re.S)
    without = "".join(line for line in without.splitlines(keepends=True) if 'type="box"' not in line)
    assert without == gymnasium_model.read_text()
    env = gym.make("Humanoid-v5", xml_file=str(MODEL)).unwrapped
    walls = [env.model.geom(name) for name in ("frontwall", "topwall", "bottomwall")]
    assert [tuple(w.pos[:2]) for w in walls] == [(5.5, 0.0), (4.0, 1.5), (4.0, -1.5)]
    assert env.reset(seed=0)[0].shape == gym.make("Humanoid-v5").observation_space.shape
    job = load_job(ROOT / "jobs" / "deceptive_humanoid_nsra_es.yaml", [])
    assert (ROOT / job.env.kwargs["xml_file"]).resolve() == MODEL


@pytest.mark.mpi
def test_novelty_search_archives_final_positions_in_the_maze(tmp_path):
    pytest.importorskip("gymnasium_robotics", reason="the maze extra (gymnasium-robotics) is not installed")
    proc = run_cli(["train", ROOT / "jobs" / "maze_ns_es.yaml", "--run-dir", tmp_path / "run",
                    "--set", "run.timesteps=null", "--set", "run.generations=4", "--set", "es.pairs=4"], ranks=2)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "run" / "checkpoint.h5") as f:
        archive = f["archive/behaviour"][...]
    assert archive.shape == (5 + 2, 2)  # generation 0 measures all five; 2 and 3 the agents updated before
    assert (np.abs(archive) < 1.5).all()  # inside the 5 x 5 maze of unit cells centred on the origin
    assert archive[:5, 1].max() < -0.5  # the initial agents end in the lower arm, below the wall
    assert len(np.unique(archive.round(6), axis=0)) == len(archive)
