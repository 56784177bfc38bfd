"""``TextEnv``: DIME as a language model sees it. Observations are the user message (the
cluster state as JSON), actions are the model's raw answer."""

from __future__ import annotations

import string

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dime_gym.actions import UNPARSABLE_ACTION, UNPARSABLE_ANSWER, UNPARSABLE_NAME
from dime_gym.text.answers import MAX_ANSWER_CHARS, parse_answer
from dime_gym.text.prompts import SYSTEM_PROMPT, chat_messages, last_command_report, render_user_message, step_report

MAX_OBSERVATION_CHARS = 8192
TEXT_CHARSET = frozenset(string.printable)  # prompts are ASCII (JSON escapes anything else)


class TextEnv(gym.Wrapper):
    """Wrap a ``DimeEnv`` so that ``reset``/``step`` return the user message as text and
    ``step`` takes a model's answer (see :func:`dime_gym.text.parse_answer`).

    An answer with no valid command never raises: the step is a no-op charged as an invalid
    action, ``info["parse_error"]`` says why, and the next observation's ``last_command``
    reports it, so a model can correct itself. ``info`` also carries ``messages`` (system
    prompt + user message, ready for ``tokenizer.apply_chat_template``), ``answer`` (the
    :class:`ParsedAnswer`), ``action`` (the action applied) and ``observation`` (the Dict
    observation). Make it with ``gym.make("DIME-v0", task=..., text=True)``.
    """

    def __init__(self, env: gym.Env, system_prompt: str = SYSTEM_PROMPT):
        super().__init__(env)
        self.system_prompt = system_prompt
        self.observation_space = spaces.Text(max_length=MAX_OBSERVATION_CHARS, min_length=1, charset=TEXT_CHARSET)
        self.action_space = spaces.Text(max_length=MAX_ANSWER_CHARS, min_length=0, charset=TEXT_CHARSET)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observe(obs, info, last_command=None)

    def step(self, answer: str):
        if not isinstance(answer, str):
            raise TypeError(f"TextEnv.step takes the model's answer as a str, got {type(answer).__name__}; "
                            "use the unwrapped env for array actions")
        parsed = parse_answer(answer)
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(parsed.action) if parsed.ok else UNPARSABLE_ANSWER)
        text, info = self._observe(obs, info, last_command=answer_report(answer, parsed, info["action_errors"]))
        info["answer"] = parsed
        info["action"] = answer_action(parsed)
        info["parse_error"] = None if parsed.ok else str(parsed.error)
        return text, reward, terminated, truncated, info

    def _observe(self, obs, info: dict, last_command):
        text = render_user_message(obs, info, last_command)
        info = dict(info, observation=obs, messages=chat_messages(text, self.system_prompt))
        return text, info


def answer_action(parsed) -> np.ndarray:
    """The (4,) int64 action a parsed answer takes: its command's, or ``UNPARSABLE`` (a no-op
    charged as an invalid action) when it has none. Batched players stack these rows."""
    return np.array(parsed.action, dtype=np.int64) if parsed.ok else UNPARSABLE_ACTION.copy()


def answer_report(answer: str, parsed, action_errors) -> dict:
    """The ``last_command`` the next prompt shows for ``answer`` (already parsed into
    ``parsed``), given the env's ``action_errors`` messages for its step: what ``TextEnv`` and
    every other multi-turn player (dime-train's episode rollouts) report, so they agree."""
    if parsed.ok:
        return step_report(parsed.command, action_errors, parsed.notes)
    return last_command_report(parsed.raw_command or answer.strip()[:80], UNPARSABLE_NAME, str(parsed.error))
