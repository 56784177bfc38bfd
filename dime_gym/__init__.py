"""DIME: an 8-node cluster simulator for training and evaluating on-call SRE agents.

Importing the package registers ``DIME-v0``::

    import gymnasium as gym
    import dime_gym

    env = gym.make("DIME-v0", task="retry_storm")

or, without the import, ``gym.make("dime_gym:DIME-v0", task="retry_storm")``.
"""

from __future__ import annotations

import gymnasium as gym

from dime_gym.scenarios import DEFAULT_TASK, TASK_IDS, TASKS, TaskId, build_episode, get_task

__version__ = "0.1.0"
ENV_ID = "DIME-v0"

if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="dime_gym.registration:make_dime_env",
        vector_entry_point="dime_gym.vector:DimeVectorEnv",
        kwargs={"task": DEFAULT_TASK},
    )


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


__all__ = ["DEFAULT_TASK", "ENV_ID", "TASKS", "TASK_IDS", "TaskId", "DimeEnv", "DimeVectorEnv", "score_actions", "build_episode", "get_task", "triage", "RULES", "TRIAGE_THRESHOLDS"]
