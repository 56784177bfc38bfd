"""GRPO reward callbacks with TRL's signature ``f(prompts, completions, **kwargs) -> list[float]``.

One picklable callable per component, each with its ``__name__`` (TRL logs
``rewards/<name>/mean``). Every callback returns a finite value inside its documented range for
any text, and never raises on a model's answer; a completion that is not text at all (see
:func:`completion_text`) gets the ``not_text`` answer's rewards. ``completions`` itself must be
a list (``TypeError`` otherwise):

* ``reward_format`` [-3, 3]: the ``<reasoning>``/``<action>`` scaffold (``FORMAT_PENALTIES``);
* ``reward_validity`` [-2, 2]: the command parses to an action;
* ``reward_env`` [-5, 5]: the env reward of the answer's action from the row's snapshot
  (an unparsable answer gets the invalid-action outcome); all completions of one prompt are
  scored in one batched call from the same state and random stream;
* ``reward_triage`` [-0.5, 1]: agreement with the triage oracle (same action > same kind).

The env and triage rewards read the dataset columns ``snapshot`` and ``oracle_action`` (see
:func:`dime_trainer.data.build_prompt_dataset`), which TRL passes as keyword lists.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from dime_gym.text import ParsedAnswer, parse_answer
from dime_trainer.reward_scales import (  # noqa: F401 - re-exported: the ranges are part of this module's API
    ENV_RANGE,
    FLAT_ENV_GROUPS_METRIC,
    FORMAT_RANGE,
    TRIAGE_RANGE,
    UNCLOSED_THINK_METRIC,
    VALIDITY_RANGE,
    checked_discount,
    checked_weights,
    clipped,
    log_flat_groups,
)

# reward_format: +3 for the exact scaffold, minus these for each tolerance the answer needed.
FORMAT_PENALTIES = {
    "missing_reasoning": 1.0,
    "missing_action_tag": 1.5,
    "unclosed_action": 1.0,
    "code_fence": 0.5,
    "single_quotes": 0.5,
    "alternate_key": 0.5,
    "bare_command": 0.5,
    "extra_text": 0.5,
}
FORMAT_NO_COMMAND_PENALTY = 2.0  # the scaffold yielded no command at all
FORMAT_CUT_OFF = -3.0  # a <think> that never closes (truncated) or an oversized answer
NO_COMMAND_KINDS = frozenset({"no_command", "bad_json", "multiple_commands"})
CUT_OFF_KINDS = frozenset({"unclosed_think", "too_long", "not_text"})

VALIDITY_CLEAN, VALIDITY_TOLERATED, VALIDITY_BAD_COMMAND, VALIDITY_NO_COMMAND = 2.0, 1.0, -1.0, -2.0
TRIAGE_SAME_ACTION, TRIAGE_SAME_KIND, TRIAGE_OTHER, TRIAGE_UNPARSABLE = 1.0, 0.25, -0.1, -0.5


def _content_text(content) -> str | None:
    """A message's ``content`` as text: a string, ``None`` (empty), or a list of OpenAI-style
    text parts ``{"type": "text", "text": ...}``; anything else is not text (``None``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return str.__str__(content)  # a plain str, whatever a subclass's __str__ does
    if isinstance(content, (list, tuple)) and all(isinstance(part, dict) and isinstance(part.get("text"), str)
                                                  for part in content):
        return "".join(str.__str__(part["text"]) for part in content)
    return None


def completion_text(completion) -> str | None:
    """The answer text of one TRL completion: a string, or the assistant messages' contents.
    ``None`` if it holds no text at all (a number, nested lists, an object): such a completion
    is scored as the answer error ``not_text``. Nothing of it is ever ``str()``-ed, so a deeply
    nested value or a raising ``__str__`` cannot escape as an exception."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return str.__str__(completion)
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        if not all(isinstance(m, dict) for m in completion):
            return None
        parts = [_content_text(m.get("content")) for m in completion if m.get("role", "assistant") == "assistant"]
        return None if None in parts else "".join(parts)
    return None


# The four callbacks see the same completions in turn: parse each text once (answers are immutable).
_parse_cached = functools.lru_cache(maxsize=16_384)(parse_answer)


def _parse_all(completions) -> list[ParsedAnswer]:
    if not isinstance(completions, Sequence) or isinstance(completions, (str, bytes)):
        raise TypeError(f"completions must be a list (one str or message list per completion), got {type(completions).__name__}")
    return [_parse_cached(completion_text(c)) for c in completions]


def format_score(parsed: ParsedAnswer) -> float:
    """``reward_format`` of one parsed answer."""
    if parsed.error is not None and parsed.error.kind in CUT_OFF_KINDS:
        return FORMAT_CUT_OFF
    score = FORMAT_RANGE[1] - sum(FORMAT_PENALTIES[r] for r in parsed.rescues)
    if parsed.error is not None and parsed.error.kind in NO_COMMAND_KINDS:
        score -= FORMAT_NO_COMMAND_PENALTY
    return max(FORMAT_RANGE[0], score)


def validity_score(parsed: ParsedAnswer) -> float:
    """``reward_validity``: 2 for a valid command as written, 1 if the grammar had to tolerate
    something (a bare index, a rounded rate), -1 for a command the grammar rejects, -2 for none."""
    if parsed.ok:
        return VALIDITY_TOLERATED if parsed.notes else VALIDITY_CLEAN
    if parsed.raw_command is not None and parsed.error.kind not in NO_COMMAND_KINDS | CUT_OFF_KINDS:
        return VALIDITY_BAD_COMMAND
    return VALIDITY_NO_COMMAND


def triage_score(parsed: ParsedAnswer, oracle_action: Sequence[int]) -> float:
    """``reward_triage``: the oracle's exact action 1, its kind 0.25, another action -0.1,
    no action -0.5 (gentle: the oracle is a baseline to beat, not ground truth)."""
    if not parsed.ok:
        return TRIAGE_UNPARSABLE
    oracle = tuple(int(x) for x in oracle_action)
    if parsed.action == oracle:
        return TRIAGE_SAME_ACTION
    return TRIAGE_SAME_KIND if parsed.action[0] == oracle[0] else TRIAGE_OTHER


def reward_format(prompts=None, completions=(), **kwargs) -> list[float]:
    """Scaffold reward in [-3, 3]: 3 for ``<reasoning>…</reasoning><action>{"command": …}</action>``
    (a closed ``<think>`` block first is fine), less per tolerance used, -3 if cut off."""
    parsed = _parse_all(completions)
    if callable(kwargs.get("log_metric")) and parsed:
        unclosed = sum(p.error is not None and p.error.kind == "unclosed_think" for p in parsed)
        kwargs["log_metric"](UNCLOSED_THINK_METRIC, unclosed / len(parsed))
    return [format_score(p) for p in parsed]


def reward_validity(prompts=None, completions=(), **kwargs) -> list[float]:
    """Command validity in [-2, 2] (see :func:`validity_score`)."""
    return [validity_score(p) for p in _parse_all(completions)]


def reward_triage(prompts=None, completions=(), oracle_action=None, **kwargs) -> list[float]:
    """Oracle agreement in [-0.5, 1]; needs the ``oracle_action`` column."""
    if oracle_action is None:
        raise ValueError("reward_triage needs the dataset column 'oracle_action' (build it with build_prompt_dataset)")
    return [triage_score(p, a) for p, a in zip(_parse_all(completions), oracle_action, strict=True)]


class EnvReward:
    """``reward_env`` in [-5, 5]: restore the row's snapshot, apply the answer's action (the
    invalid-action outcome if it has none) and return the env reward.

    Completions sharing a snapshot (one GRPO group) are scored in one batched call from the
    same state and random stream, so their rewards differ only through their actions.
    ``horizon > 0`` scores the discounted mean reward over ``1 + horizon`` steps,
    ``sum_t discount**t r_t / sum_t discount**t``, the later steps chosen by ``continuation``
    (``"noop"``: act, then wait, so a throttle stays in force; or ``"oracle"``): credit for
    consequences that show up a step or two later.
    """

    def __init__(self, horizon: int = 0, discount: float = 1.0, continuation: str = "noop"):
        from dime_gym.counterfactual import CONTINUATIONS

        if horizon < 0:
            raise ValueError(f"horizon must be >= 0, got {horizon}")
        checked_discount(discount, "discount")
        if continuation not in CONTINUATIONS:
            raise ValueError(f"continuation must be one of {CONTINUATIONS}, got {continuation!r}")
        self.horizon = int(horizon)
        self.discount = float(discount)
        self.continuation = continuation
        self.__name__ = "reward_env"

    def __call__(self, prompts=None, completions=(), snapshot=None, **kwargs) -> list[float]:
        if snapshot is None:
            raise ValueError("reward_env needs the dataset column 'snapshot' (build it with build_prompt_dataset)")
        from dime_gym import REWARD_COMPONENTS
        from dime_gym.actions import UNPARSABLE
        from dime_gym.counterfactual import score_actions

        parsed = _parse_all(completions)
        actions = np.array([p.action if p.ok else (UNPARSABLE, 0, 0, 0) for p in parsed], dtype=np.int64).reshape(-1, 4)
        rewards = np.empty(len(parsed))
        components = {name: np.empty(len(parsed)) for name in REWARD_COMPONENTS}
        if len(snapshot) != len(parsed):
            raise ValueError(f"reward_env got {len(parsed)} completions but {len(snapshot)} snapshots; TRL passes one per completion")
        groups: dict[bytes, list[int]] = {}
        for i, snap in enumerate(snapshot):
            groups.setdefault(bytes(snap), []).append(i)
        for snap, rows in groups.items():
            scores = score_actions(snap, actions[rows], horizon=self.horizon, continuation=self.continuation,
                                   discount=self.discount)
            rewards[rows] = scores.returns / self._weight_sum(scores.steps)  # a weighted mean: stays in [-5, 5]
            for name in REWARD_COMPONENTS:
                components[name][rows] = scores.reward_components[name]
        if callable(kwargs.get("log_metric")) and len(parsed):
            for name, values in components.items():
                kwargs["log_metric"](f"dime/env/{name}", float(values.mean()))
            log_flat_groups(kwargs["log_metric"], (rewards[rows].tolist() for rows in groups.values()))
        return [clipped(float(r), ENV_RANGE) for r in rewards]

    def _weight_sum(self, steps: np.ndarray) -> np.ndarray:
        """``sum_{t < steps} discount**t`` per candidate (fewer steps where the episode ended)."""
        if self.discount == 1.0:
            return steps.astype(np.float64)
        return (1.0 - self.discount ** steps) / (1.0 - self.discount)

    def __reduce__(self):
        return (EnvReward, (self.horizon, self.discount, self.continuation))


reward_env = EnvReward()
REWARD_FUNCS = (reward_format, reward_validity, reward_env, reward_triage)
REWARD_NAMES = tuple(f.__name__ for f in REWARD_FUNCS)
REWARD_RANGES = {"reward_format": FORMAT_RANGE, "reward_validity": VALIDITY_RANGE, "reward_env": ENV_RANGE, "reward_triage": TRIAGE_RANGE}


def hit_length_limit(completion_ids: Sequence[int], max_completion_length: int, stop_token_ids=None) -> bool:
    """Whether a completion was cut off at ``max_completion_length`` tokens: it is that long and
    (when ``stop_token_ids`` is given) its last token is not one of them (TRL's own "truncated")."""
    if len(completion_ids) < max_completion_length:
        return False
    return stop_token_ids is None or len(completion_ids) == 0 or int(completion_ids[-1]) not in stop_token_ids


class LengthCappedFormatReward:
    """``reward_format`` (same name, same [-3, 3] range), except that a completion that hit
    ``max_completion_length`` gets ``FORMAT_CUT_OFF`` (-3, like an oversized ``too_long``
    answer): an answer whose ``</action>`` made it in before the cut still parses with a small
    tolerance, so without this a rambling, cut-off answer kept nearly full format credit.
    ``stop_token_ids``: the tokens that end a completion (``dime-train`` sets TRL's EOS and pad
    ids once the trainer exists); ``None`` judges by length alone."""

    def __init__(self, max_completion_length: int, stop_token_ids=None):
        if max_completion_length < 1:
            raise ValueError(f"max_completion_length must be >= 1, got {max_completion_length}")
        self.max_completion_length = int(max_completion_length)
        self.stop_token_ids = None if stop_token_ids is None else frozenset(int(t) for t in stop_token_ids)
        self.__name__ = "reward_format"

    def __call__(self, prompts=None, completions=(), completion_ids=None, **kwargs) -> list[float]:
        scores = reward_format(prompts, completions, **kwargs)
        if completion_ids is None:
            return scores
        return [FORMAT_CUT_OFF if hit_length_limit(ids, self.max_completion_length, self.stop_token_ids) else score
                for score, ids in zip(scores, completion_ids, strict=True)]

    def __reduce__(self):
        return (LengthCappedFormatReward, (self.max_completion_length, self.stop_token_ids))


# The recipe's reward design (README "Reward design"): once an answer is well-formed, the
# environment decides the advantage. Format and validity are small terms (together they cannot
# outweigh a better action's env reward), the oracle's agreement a nudge (it is the baseline to
# beat, not ground truth), and the env reward looks two steps past the answer's own step with
# the oracle acting in them (a move that pays off only with a follow-up, such as the first of two
# reroutes, is not read as a loss).
DEFAULT_REWARD_WEIGHTS = (0.2, 0.2, 1.0, 0.1)  # REWARD_NAMES order
DEFAULT_ENV_REWARD_HORIZON = 2
DEFAULT_ENV_REWARD_DISCOUNT = 0.5
DEFAULT_ENV_REWARD_CONTINUATION = "oracle"
# The design before it, kept for comparisons (benchmarks, tests): equal weights, one-step env reward.
OLD_REWARD_DESIGN = {"reward_weights": [1.0, 1.0, 1.0, 1.0], "env_reward_horizon": 0}
# What a completion is: one answer to one state (step mode, these rewards), or several turns of
# an episode played by dime_trainer.rollout.EpisodeRollout (dime_trainer.episode_rewards).
ROLLOUT_MODES = ("step", "episode")


def build_rewards(config: Mapping) -> tuple[list, list[float]]:
    """The recipe's reward functions and weights, as ``dime-train`` uses them.

    Args:
        config: a mapping with the recipe YAML's keys (any others are ignored). With
            ``rollout: episode`` the episode rewards are built instead
            (:func:`dime_trainer.episode_rewards.build_episode_rewards`); otherwise:
            ``reward_weights`` (four numbers in ``REWARD_NAMES`` order; missing or ``None``:
            ``DEFAULT_REWARD_WEIGHTS``), ``env_reward_horizon``, ``env_reward_discount``,
            ``env_reward_continuation`` (missing or ``None``: the ``DEFAULT_ENV_REWARD_*``), and
            ``max_completion_length`` (when given, ``reward_format`` is a
            :class:`LengthCappedFormatReward`: an answer cut off at the limit scores -3).

    Returns:
        ``(funcs, weights)`` for ``GRPOTrainer(reward_funcs=funcs, args=GRPOConfig(reward_weights=weights))``.

    Raises:
        ValueError: an unknown ``rollout``, weights of the wrong length or not finite, or a bad
            horizon, discount or continuation.
    """
    def get(key, default):
        value = config.get(key)
        return default if value is None else value

    rollout = get("rollout", "step")
    if rollout not in ROLLOUT_MODES:
        raise ValueError(f"rollout must be one of {', '.join(ROLLOUT_MODES)}, got {rollout!r}")
    if rollout == "episode":
        from dime_trainer.episode_rewards import build_episode_rewards

        return build_episode_rewards(config)
    weights = checked_weights(get("reward_weights", DEFAULT_REWARD_WEIGHTS), REWARD_NAMES, config.get("reward_weights"))
    env = EnvReward(horizon=int(get("env_reward_horizon", DEFAULT_ENV_REWARD_HORIZON)),
                    discount=float(get("env_reward_discount", DEFAULT_ENV_REWARD_DISCOUNT)),
                    continuation=str(get("env_reward_continuation", DEFAULT_ENV_REWARD_CONTINUATION)))
    max_length = config.get("max_completion_length")
    fmt = reward_format if max_length is None else LengthCappedFormatReward(int(max_length))
    return [fmt, reward_validity, env, reward_triage], weights
