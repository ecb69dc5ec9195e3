"""Training episode caps (es_mpi.core.caps)."""

import numpy as np
from helpers import tiny_job

from es_mpi.core.caps import next_cap
from es_mpi.runs.job import job_from_dict


def test_mean_length_cap_follows_the_mean_episode_length():
    job = job_from_dict(tiny_job(env={"episode_cap": "mean", "mean_cap": {"multiple": 2.0, "minimum": 30}}), "t")
    assert next_cap(job, 1000, np.array([[20, 40], [30, 30]]), 1000) == 60  # 2 x mean 30
    assert next_cap(job, 1000, np.array([[5, 5], [5, 5]]), 1000) == 30  # never below the minimum
    assert next_cap(job, 60, np.array([[60, 60], [60, 60]]), 100) == 100  # all hit it: grows, to the limit


def test_adaptive_cap_grows_only_when_enough_episodes_hit_it():
    job = job_from_dict(tiny_job(env={"adaptive": {"start": 40, "fraction": 0.5, "ratio": 1.5}}), "t")
    assert next_cap(job, 40, np.array([[40, 40], [10, 12]]), 1000) == 60
    assert next_cap(job, 40, np.array([[40, 11], [10, 12]]), 1000) == 40
    assert next_cap(job, 900, np.array([[900, 900]]), 1000) == 1000


def test_env_cap_never_changes():
    job = job_from_dict(tiny_job(env={"episode_cap": "env"}), "t")
    assert next_cap(job, 1000, np.array([[3, 4]]), 1000) == 1000
