"""``benchmarks/trajectory_hash.py``, the bit-identity check of speed changes: its hashes repeat
for the same seeds (determinism of the single and the vector env) and change with the actions."""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from trajectory_hash import single_env_hash, vector_env_hash  # noqa: E402


def test_trajectory_hash__repeats_for_the_same_actions_and_changes_with_them():
    def hashes(action_seed: int) -> tuple[str, str]:
        rng = np.random.default_rng(action_seed)
        return single_env_hash(rng, episodes=1), vector_env_hash(rng, num_envs=16, steps=60)

    first = hashes(1)
    assert hashes(1) == first
    other = hashes(2)
    assert other[0] != first[0] and other[1] != first[1]
