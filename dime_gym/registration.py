"""The entry point behind ``gym.make("DIME-v0", ...)``: the structured env, or with
``text=True`` the same env inside ``TextEnv`` (text observations and answers)."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym

from dime_gym.env import DimeEnv
from dime_gym.scenarios import DEFAULT_TASK


def make_dime_env(task: str | Sequence[str] = DEFAULT_TASK, text: bool = False, system_prompt: str | None = None, **kwargs) -> gym.Env:
    """``DimeEnv(task, **kwargs)``; with ``text=True`` wrapped in ``TextEnv`` (whose system
    prompt ``system_prompt`` replaces the default)."""
    env = DimeEnv(task=task, **kwargs)
    if not text:
        if system_prompt is not None:
            raise ValueError("system_prompt only applies to the text interface; pass text=True as well")
        return env
    from dime_gym.text.env import TextEnv

    return TextEnv(env) if system_prompt is None else TextEnv(env, system_prompt=system_prompt)


make_dime_env.metadata = DimeEnv.metadata  # gym.make reads render modes from the entry point
