"""A short hash of DIME trajectories, to check that a speed change kept every bit.

It plays seeded random actions through the single env (three episodes of every task) and through
a 1,024-env vector env with mixed tasks (150 steps, across autoresets), and hashes what an
agent gets back: observations, rewards and grader scores. Run it on the code before and after a
change (``PYTHONPATH`` set to each checkout): equal hashes mean the change is bit-identical.

    python benchmarks/trajectory_hash.py
"""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np

import dime_gym  # noqa: F401 - registers DIME-v0
from dime_gym import TASK_IDS
from dime_gym.actions import ACTION_NVEC


def _update(digest, obs: dict, reward, score) -> None:
    for key in sorted(obs):
        digest.update(np.ascontiguousarray(obs[key]).tobytes())
    digest.update(np.asarray(reward, dtype=np.float64).tobytes())
    digest.update(np.asarray(score, dtype=np.float64).tobytes())


def single_env_hash(rng: np.random.Generator, episodes: int = 3) -> str:
    digest = hashlib.sha256()
    for task in TASK_IDS:
        env = gym.make("DIME-v0", task=task)
        for episode in range(episodes):
            env.reset(seed=episode)
            done = False
            while not done:
                action = rng.integers(0, ACTION_NVEC)
                action[0] *= rng.random() < 0.4  # mostly no-ops
                obs, reward, terminated, truncated, info = env.step(action)
                _update(digest, obs, reward, info["score"])
                done = terminated or truncated
    return digest.hexdigest()[:16]


def vector_env_hash(rng: np.random.Generator, num_envs: int = 1024, steps: int = 150) -> str:
    digest = hashlib.sha256()
    tasks = [TASK_IDS[i % len(TASK_IDS)] for i in range(num_envs)]
    envs = gym.make_vec("DIME-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", task=tasks)
    envs.reset(seed=7)
    for _ in range(steps):
        actions = rng.integers(0, ACTION_NVEC, size=(num_envs, 4))
        actions[:, 0] *= rng.random(num_envs) < 0.3
        obs, rewards, _, _, infos = envs.step(actions)
        _update(digest, obs, rewards, infos["score"])
    return digest.hexdigest()[:16]


def main() -> None:
    rng = np.random.default_rng(123)
    print("single", single_env_hash(rng), "vector", vector_env_hash(rng))


if __name__ == "__main__":
    main()
