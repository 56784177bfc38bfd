"""Episode rewards (``dime_trainer.episode_rewards``): they read the episode record the rollout
passes per completion, stay in their ranges, and ``build_rewards`` builds them for ``rollout: episode``."""

from __future__ import annotations

import pickle

import pytest

from dime_trainer.episode_rewards import (
    DEFAULT_EPISODE_REWARD_WEIGHTS,
    EPISODE_REWARD_NAMES,
    EpisodeReturnReward,
    reward_episode_format,
    reward_episode_score,
    reward_episode_validity,
)
from dime_trainer.rewards import FLAT_ENV_GROUPS_METRIC, build_rewards


@pytest.mark.parametrize(("turns", "expected"), [
    ([3.0, 3.0], 3.0),  # clean answers every turn
    ([3.0, -3.0], 0.0),  # one cut off
    ([2.5], 2.5),  # a single turn (the episode budget allowed no more)
])
def test_reward_episode_format__mean_of_the_turns(turns, expected):
    assert reward_episode_format(completions=["x"], episode_turn_format=[turns]) == [expected]


def test_reward_episode_validity_and_score__read_their_fields_and_clip():
    assert reward_episode_validity(completions=["x"], episode_turn_validity=[[2.0, -2.0, 1.0]]) == [pytest.approx(1 / 3)]
    assert reward_episode_score(completions=["x", "y"], episode_score=[0.73, float("nan")]) == [0.73, 0.0]


@pytest.mark.parametrize(("discount", "rewards", "expected"), [
    (1.0, [1.0, 2.0, 3.0], 2.0),  # the plain mean
    (0.5, [1.0, 2.0, 3.0], (1 + 1 + 0.75) / 1.75),  # sum 0.5**t r_t / sum 0.5**t
    (0.5, [], 0.0),  # nothing played
    (0.9, [9.0, 9.0], 5.0),  # clipped to the env reward's range
])
def test_reward_episode_return__discounted_mean(discount, rewards, expected):
    assert EpisodeReturnReward(discount)(completions=["x"], episode_rewards=[rewards]) == [pytest.approx(expected)]


def test_reward_episode_return__logs_flat_groups_and_pickles():
    logged = {}
    reward = EpisodeReturnReward(0.8)
    prompts = [["a"], ["a"], ["b"], ["b"]]
    reward(prompts=prompts, completions=[""] * 4, episode_rewards=[[1.0], [1.0], [1.0], [2.0]],
           log_metric=lambda name, value: logged.update({name: value}))
    assert logged == {FLAT_ENV_GROUPS_METRIC: 0.5}  # group "a" is flat, "b" is not
    assert pickle.loads(pickle.dumps(reward)).discount == 0.8


def test_episode_rewards__missing_field_names_episode_mode():
    with pytest.raises(ValueError, match="episode_score is an episode-rollout field.*--rollout episode"):
        reward_episode_score(completions=["x"])


def test_build_rewards__episode_mode():
    funcs, weights = build_rewards({"rollout": "episode", "episode_reward_discount": 0.5})
    assert [f.__name__ for f in funcs] == list(EPISODE_REWARD_NAMES)
    assert weights == list(DEFAULT_EPISODE_REWARD_WEIGHTS) and funcs[2].discount == 0.5
    with pytest.raises(ValueError, match="4 finite numbers for reward_episode_format"):
        build_rewards({"rollout": "episode", "reward_weights": [1, 1, 1]})
    with pytest.raises(ValueError, match=r"episode_reward_discount must be in \(0, 1\]"):
        build_rewards({"rollout": "episode", "episode_reward_discount": 0.0})
    step_funcs, _ = build_rewards({"rollout": "step"})
    assert step_funcs[2].__name__ == "reward_env"
