"""Run a trained policy in a plain gymnasium loop, outside es-mpi: the example of `es_mpi.load_policy`.

    python results/play_policy.py RUN_DIR [--episodes 3]

Episode e starts from the env seed `es-mpi eval` gives its episode e, so the returns printed here equal
the ones `es-mpi eval RUN_DIR --csv FILE` writes. The env is the one `gym.make` returns for the run's job
(for ALE runs es-mpi's own Atari env, which holds the preprocessing).
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import es_mpi
from es_mpi.commands.evaluate import eval_seed
from es_mpi.reports.script import run_script


def play(run_dir: str, episodes: int) -> list[float]:
    policy = es_mpi.load_policy(run_dir)
    job = policy.job
    if job.policy.kind == "cnn":
        env, limit = policy.make_env()
    else:
        env = gym.make(job.env.id, **job.env.kwargs)  # its TimeLimit ends the episode
    returns = []
    for e in range(episodes):
        observation, _ = env.reset(seed=eval_seed(job, e))
        total, steps, done = 0.0, 0, False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(policy.act(observation))
            total, steps = total + reward, steps + 1
            done = terminated or truncated or (job.policy.kind == "cnn" and steps >= limit)
        returns.append(total)
        print(f"episode {e}: return {total:.6f}, {steps} steps")
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory holding checkpoint.h5")
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()
    play(args.run_dir, args.episodes)


if __name__ == "__main__":
    run_script(main)
