"""Registered ids: ``DIME-v0``, one id per task, and the multi-task id, each with
``spec.max_episode_steps``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dime_gym
from dime_gym import MULTITASK_ENV_ID, TASK_ENV_IDS
from dime_gym.env import DimeEnv
from dime_gym.scenarios import TASK_IDS, TASKS, get_task

NO_OP = np.zeros(4, dtype=np.int64)


@pytest.mark.parametrize("task", TASK_IDS)
def test_registration__one_id_per_task_with_its_episode_length(task):
    env_id = f"DIME-{task}-v0"
    assert TASK_ENV_IDS[task] == env_id
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == get_task(task).episode_steps
    _, info = env.reset(seed=0)
    assert info["task"] == task
    for step in range(1, get_task(task).episode_steps + 1):
        *_, truncated, info = env.step(NO_OP)
        assert truncated == (step == get_task(task).episode_steps)


def test_registration__task_ids_make_vector_envs_of_that_task():
    envs = gym.make_vec("DIME-zombie_node-v0", num_envs=2, vectorization_mode="vector_entry_point")
    _, infos = envs.reset(seed=0)
    assert list(infos["task"]) == ["zombie_node", "zombie_node"]


def test_registration__dime_v0_spec_bounds_the_longest_task():
    spec = gym.spec("DIME-v0")
    assert spec.max_episode_steps == max(t.episode_steps for t in TASKS)
    assert spec.kwargs == {"task": "traffic_spike"}  # what an omitted task= means (README says so)


def test_registration__multitask_draws_a_task_per_episode_reproducibly():
    env = gym.make(MULTITASK_ENV_ID)
    assert env.spec.max_episode_steps == max(t.episode_steps for t in TASKS)
    drawn = [env.reset(seed=seed)[1]["task"] for seed in range(40)]
    assert set(drawn) <= set(TASK_IDS) and len(set(drawn)) >= 8
    assert [env.reset(seed=seed)[1]["task"] for seed in range(40)] == drawn  # the seed fixes the task
    _, info = env.reset(seed=3, options={"task": "retry_storm"})  # an explicit task still wins
    assert info["task"] == "retry_storm"
    check_env(env.unwrapped, skip_render_check=True)


def test_registration__multitask_episode_equals_the_drawn_single_task_episode():
    multi = DimeEnv(task=["retry_storm", "zombie_node"])
    obs, info = multi.reset(seed=5)
    assert info["task"] in ("retry_storm", "zombie_node")
    assert multi.episode.params["episode_steps"] == get_task(info["task"]).episode_steps
    _, info_again = DimeEnv(task=["retry_storm", "zombie_node"]).reset(seed=5)
    assert info_again["task"] == info["task"]


@pytest.mark.parametrize("bad", [[], ["retry_storm", "retry_storm"], ["no_such_task"], "no_such_task", 3])
def test_registration__bad_task_pools_are_refused(bad):
    with pytest.raises(ValueError, match="task"):
        DimeEnv(task=bad)


def test_registration__ids_are_exported_and_registered_once():
    ids = [env_id for env_id in gym.registry if env_id.startswith("DIME-")]
    assert sorted(ids) == sorted(["DIME-v0", MULTITASK_ENV_ID, *TASK_ENV_IDS.values()])
    assert {"MULTITASK_ENV_ID", "TASK_ENV_IDS"} <= set(dime_gym.__all__)
