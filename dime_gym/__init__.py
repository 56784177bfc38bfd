"""DIME (Distributed Infrastructure Management Environment): an 8-node cluster simulator for
training and evaluating on-call SRE (site reliability engineering) agents.

Importing the package registers, with ``spec.max_episode_steps`` set:

* ``DIME-v0``: any task, chosen with ``task=`` (omitted: ``"traffic_spike"``);
* ``DIME-<task>-v0``, one per task (``DIME-retry_storm-v0``, ...), for tools that take only an id;
* ``DIME-multitask-v0``: a task drawn per episode from all 14 (``info["task"]`` says which).

::

    import gymnasium as gym
    import dime_gym

    env = gym.make("DIME-v0", task="retry_storm")   # or gym.make("DIME-retry_storm-v0")

or, without the import, ``gym.make("dime_gym:DIME-v0", task="retry_storm")``.
"""

from __future__ import annotations

import gymnasium as gym

from dime_gym.core.nodes import serving_mask
from dime_gym.core.params import OOM_THRESHOLD, SLO_P99_MS
from dime_gym.core.reward import REWARD_BOUNDS, REWARD_COMPONENTS
from dime_gym.core.state import DB, N_NODES, PARAMS_DTYPE, STATE_DTYPE
from dime_gym.scenarios import DEFAULT_TASK, TASK_IDS, TASKS, TaskId, build_episode, get_task

__version__ = "0.1.0"
ENV_ID = "DIME-v0"
MULTITASK_ENV_ID = "DIME-multitask-v0"
TASK_ENV_IDS: dict[str, str] = {task: f"DIME-{task}-v0" for task in TASK_IDS}
_LONGEST_EPISODE = max(task.episode_steps for task in TASKS)


def _register(env_id: str, task, max_episode_steps: int, vector: bool = True) -> None:
    if env_id in gym.registry:  # a re-import (e.g. importlib.reload) keeps the first registration
        return
    gym.register(
        id=env_id,
        entry_point="dime_gym.registration:make_dime_env",
        vector_entry_point="dime_gym.vector:DimeVectorEnv" if vector else None,
        max_episode_steps=max_episode_steps,
        kwargs={"task": task},
    )


# the env truncates each episode at its task's length itself; the spec bounds the longest task
_register(ENV_ID, DEFAULT_TASK, _LONGEST_EPISODE)
for _task in TASKS:
    _register(TASK_ENV_IDS[_task.id], _task.id, _task.episode_steps)
_register(MULTITASK_ENV_ID, "all", _LONGEST_EPISODE, vector=False)  # DimeVectorEnv has one task per sub-env
del _task


def __getattr__(name: str):
    # heavy names (they compile or import the env) load on first use
    if name == "DimeEnv":
        from dime_gym.env import DimeEnv

        return DimeEnv
    if name == "DimeVectorEnv":
        from dime_gym.vector import DimeVectorEnv

        return DimeVectorEnv
    if name == "score_actions":
        from dime_gym.counterfactual import score_actions

        return score_actions
    if name in ("triage", "RULES", "TRIAGE_THRESHOLDS"):
        from dime_gym import oracle

        return getattr(oracle, name)
    raise AttributeError(f"module 'dime_gym' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TASK", "ENV_ID", "MULTITASK_ENV_ID", "TASK_ENV_IDS", "TASKS", "TASK_IDS", "TaskId", "DimeEnv", "DimeVectorEnv",
    "score_actions", "build_episode", "get_task", "triage", "RULES", "TRIAGE_THRESHOLDS",
    # the cluster's public facts (records, node roles and status, reward names, thresholds shown to agents)
    "DB", "N_NODES", "OOM_THRESHOLD", "PARAMS_DTYPE", "REWARD_BOUNDS", "REWARD_COMPONENTS", "SLO_P99_MS", "STATE_DTYPE",
    "serving_mask",
]
