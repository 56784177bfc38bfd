"""GRPO needs rewards that differ within a group: from one state, different actions must give
different rewards in the vast majority of states (the seed's collapse was a constant cliff)."""

from __future__ import annotations

import numpy as np
import pytest

from dime_gym.core.actions import ACTION_NVEC
from dime_gym.core.dynamics import step_batch_serial
from dime_gym.env import DimeEnv
from dime_gym.oracle import oracle_policy
from dime_gym.scenarios import TASK_IDS

GROUP_SIZE = 4  # GRPO's generations per prompt in the seed's recipe


def visited_states(task: str, seed: int, every: int = 5):
    """(params, state) copies along an oracle rollout, every few steps."""
    env = DimeEnv(task=task, with_oracle=False)
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        if int(obs["step"][0]) % every == 0:
            yield env._engine.params.copy(), env._engine.states.copy()
        obs, _, terminated, truncated, _ = env.step(oracle_policy(obs))
        done = terminated or truncated


def group_rewards(params, states, actions) -> np.ndarray:
    """Reward of each action applied to its own copy of the same state (same random stream)."""
    batch_params = np.repeat(params, len(actions))
    batch_states = np.repeat(states, len(actions))
    step_batch_serial(batch_params, batch_states, np.ascontiguousarray(actions, dtype=np.int64))
    return batch_states["reward"].copy()


@pytest.mark.parametrize("task", TASK_IDS)
def test_reward__varies_within_a_group_of_distinct_actions(task):
    rng = np.random.default_rng(0)
    groups = 0
    collapsed = 0
    for params, states in visited_states(task, seed=1):
        actions = np.unique(rng.integers(0, ACTION_NVEC, size=(GROUP_SIZE, 4)), axis=0)
        rewards = group_rewards(params, states, actions)
        groups += 1
        collapsed += int(np.ptp(rewards) == 0.0)
    assert groups >= 8
    assert collapsed / groups <= 0.1, f"{collapsed}/{groups} groups had identical rewards"


def test_reward__identical_actions_from_one_state_get_identical_rewards():
    params, states = next(visited_states("retry_storm", seed=3))
    action = np.array([[4, 0, 0, 8]] * GROUP_SIZE)
    rewards = group_rewards(params, states, action)
    assert np.all(rewards == rewards[0])
