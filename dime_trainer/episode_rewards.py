"""Episode rewards for ``dime-train --rollout episode``: TRL reward callbacks that read the episode
record :class:`dime_trainer.rollout.EpisodeRollout` returns per completion (extra keys of
``rollout_func``, which TRL passes to every reward function as keyword lists).

* ``reward_episode_format`` [-3, 3]: the mean ``reward_format`` of the model's turns (an answer
  cut off at the per-turn budget counts -3);
* ``reward_episode_validity`` [-2, 2]: the mean ``reward_validity`` of the model's turns;
* ``reward_episode_return`` [-5, 5]: the discounted mean env reward from the start state on,
  ``sum_t discount**t r_t / sum_t discount**t`` over the model's turns and the continuation's
  steps (the same weighted mean as step mode's ``reward_env`` lookahead, over a longer horizon);
* ``reward_episode_score`` [0, 1]: the grader's score where play stopped (with the default
  continuation to the episode's end: the episode's ``dime-eval`` score).

The rollouts of a group start from one state with one random stream, so these differ within a
group only through the model's answers. The text completion TRL decodes (model and environment
tokens together) is not read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dime_trainer.reward_scales import (
    ENV_RANGE,
    FORMAT_RANGE,
    VALIDITY_RANGE,
    checked_discount,
    checked_weights,
    clipped,
    log_flat_groups,
)

SCORE_RANGE = (0.0, 1.0)
EPISODE_REWARD_NAMES = ("reward_episode_format", "reward_episode_validity", "reward_episode_return", "reward_episode_score")
# The episode design, on the same principle as step mode's (README "Reward design"): format and
# validity are small terms, the environment decides once answers are well-formed. The return is
# discounted (an effective horizon of about 1 / (1 - discount) = 5 steps: the consequences of the
# model's own turns), and the final score, whose spread within a group is a few hundredths
# (the prefix before the start state is shared), gets a weight that makes it count as much.
DEFAULT_EPISODE_REWARD_WEIGHTS = (0.2, 0.2, 1.0, 10.0)  # EPISODE_REWARD_NAMES order
DEFAULT_EPISODE_REWARD_DISCOUNT = 0.8


def _require(name: str, values):
    if values is None:
        raise ValueError(f"{name} is an episode-rollout field: episode rewards need dime-train --rollout episode "
                         "(rollout_func=EpisodeRollout), which passes it to every reward function")
    return values


def reward_episode_format(prompts=None, completions=(), episode_turn_format=None, **kwargs) -> list[float]:
    """Mean ``reward_format`` of the model's turns, in [-3, 3]."""
    return [clipped(float(np.mean(turns)), FORMAT_RANGE) for turns in _require("episode_turn_format", episode_turn_format)]


def reward_episode_validity(prompts=None, completions=(), episode_turn_validity=None, **kwargs) -> list[float]:
    """Mean ``reward_validity`` of the model's turns, in [-2, 2]."""
    return [clipped(float(np.mean(turns)), VALIDITY_RANGE) for turns in _require("episode_turn_validity", episode_turn_validity)]


def reward_episode_score(prompts=None, completions=(), episode_score=None, **kwargs) -> list[float]:
    """The grader's score where the rollout stopped, in [0, 1]."""
    return [clipped(float(s), SCORE_RANGE) for s in _require("episode_score", episode_score)]


class EpisodeReturnReward:
    """``reward_episode_return`` in [-5, 5]: ``sum_t discount**t r_t / sum_t discount**t`` over
    a rollout's env rewards (model turns, then the continuation's steps). Also logs the share of
    groups whose returns are all equal (``dime/env_flat_group_frac``, read by the health monitor)."""

    def __init__(self, discount: float = DEFAULT_EPISODE_REWARD_DISCOUNT):
        self.discount = checked_discount(discount, "episode_reward_discount")
        self.__name__ = "reward_episode_return"

    def episode_return(self, rewards: Sequence[float]) -> float:
        """The discounted mean of one rollout's rewards (0 for none)."""
        if len(rewards) == 0:
            return 0.0
        weights = self.discount ** np.arange(len(rewards))
        return clipped(float(np.dot(weights, rewards) / weights.sum()), ENV_RANGE)

    def __call__(self, prompts=None, completions=(), episode_rewards=None, **kwargs) -> list[float]:
        returns = [self.episode_return(r) for r in _require("episode_rewards", episode_rewards)]
        if callable(kwargs.get("log_metric")) and prompts is not None and len(prompts) == len(returns):
            groups: dict[str, list[float]] = {}
            for prompt, value in zip(prompts, returns, strict=True):
                groups.setdefault(repr(prompt), []).append(value)
            log_flat_groups(kwargs["log_metric"], groups.values())
        return returns

    def __reduce__(self):
        return (EpisodeReturnReward, (self.discount,))


def build_episode_rewards(config: Mapping) -> tuple[list, list[float]]:
    """The episode reward functions and weights (``build_rewards`` with ``rollout: episode``).

    Args:
        config: ``reward_weights`` (four numbers in ``EPISODE_REWARD_NAMES`` order; missing or
            ``None``: ``DEFAULT_EPISODE_REWARD_WEIGHTS``) and ``episode_reward_discount``
            (missing or ``None``: ``DEFAULT_EPISODE_REWARD_DISCOUNT``); other keys are ignored.

    Raises:
        ValueError: weights of the wrong length or not finite, or a discount outside (0, 1].
    """
    given = config.get("reward_weights")
    weights = checked_weights(DEFAULT_EPISODE_REWARD_WEIGHTS if given is None else given, EPISODE_REWARD_NAMES, given,
                              " in episode mode")
    discount = config.get("episode_reward_discount")
    returns = EpisodeReturnReward(DEFAULT_EPISODE_REWARD_DISCOUNT if discount is None else float(discount))
    return [reward_episode_format, reward_episode_validity, returns, reward_episode_score], weights
