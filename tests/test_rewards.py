"""GRPO reward callbacks: exact values on a table of answers, bounds on arbitrary text, TRL's
calling convention, and group consistency of the env reward."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dime_trainer.rewards import (
    ENV_RANGE,
    FORMAT_RANGE,
    REWARD_FUNCS,
    REWARD_RANGES,
    TRIAGE_RANGE,
    UNCLOSED_THINK_METRIC,
    VALIDITY_RANGE,
    EnvReward,
    completion_text,
    reward_format,
    reward_triage,
    reward_validity,
)

ORACLE_RESTART_3 = [1, 3, 0, 0]
CLEAN = '<reasoning>Node 3 is out of memory.</reasoning>\n<action>{"command": "kubectl delete pod node-3"}</action>'

# (case, answer, format, validity, triage against ORACLE_RESTART_3)
TABLE = [
    ("clean", CLEAN, 3.0, 2.0, 1.0),
    ("clean_after_think", "<think>node 3 mem 0.95</think>" + CLEAN, 3.0, 2.0, 1.0),
    ("same_kind_other_node", CLEAN.replace("node-3", "node-4"), 3.0, 2.0, 0.25),
    ("other_kind", '<reasoning>r</reasoning><action>{"command": "no_op"}</action>', 3.0, 2.0, -0.1),
    ("rescued_bare_index", '<reasoning>r</reasoning><action>{"command": "kubectl delete pod 3"}</action>', 3.0, 1.0, 1.0),
    ("rescued_fence_and_prose", '<reasoning>r</reasoning><action>```json\n{"command": "kubectl delete pod node-3"}\n```</action> done',
     2.0, 2.0, 1.0),
    ("bare_line", "kubectl delete pod node-3", 0.0, 2.0, 1.0),
    ("no_reasoning_single_quotes", "<action>{'command': 'kubectl delete pod node-3'}</action>", 1.5, 2.0, 1.0),
    ("unclosed_think", "<think>node 3 is hot so I will restart it and then", -3.0, -2.0, -0.5),
    ("invalid_command", '<reasoning>r</reasoning><action>{"command": "kubectl delete pod node-12"}</action>', 3.0, -1.0, -0.5),
    ("wrong_json", '<reasoning>r</reasoning><action>{"command": kubectl delete pod node-3}</action>', 1.0, -2.0, -0.5),
    ("empty", "", -1.5, -2.0, -0.5),
    ("enormous", "x" * 300_000, -3.0, -2.0, -0.5),
]


@pytest.mark.parametrize("case, answer, fmt, validity, triage", TABLE, ids=[row[0] for row in TABLE])
def test_reward_table__exact_values(case, answer, fmt, validity, triage):
    completions = [[{"role": "assistant", "content": answer}]]
    assert reward_format(prompts=[None], completions=completions) == [fmt]
    assert reward_validity(prompts=[None], completions=completions) == [validity]
    assert reward_triage(prompts=[None], completions=completions, oracle_action=[ORACLE_RESTART_3]) == [triage]


def test_completion_text__conversational_and_plain():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "x"}, {"role": "assistant", "content": "b"}]) == "ab"
    assert completion_text(None) == ""


@given(st.text(max_size=300))
def test_text_rewards__finite_and_in_range_for_any_text(text):
    completions = [text, [{"role": "assistant", "content": text}]]
    for func, bounds in ((reward_format, FORMAT_RANGE), (reward_validity, VALIDITY_RANGE)):
        for value in func(prompts=[None, None], completions=completions):
            assert math.isfinite(value) and bounds[0] <= value <= bounds[1]
    for value in reward_triage(prompts=[None, None], completions=completions, oracle_action=[ORACLE_RESTART_3] * 2):
        assert TRIAGE_RANGE[0] <= value <= TRIAGE_RANGE[1]


def test_reward_format__logs_the_unclosed_think_fraction():
    logged = {}
    reward_format(prompts=[None] * 4, completions=["<think>x", CLEAN, CLEAN, "<think>y"], log_metric=logged.__setitem__)
    assert logged == {UNCLOSED_THINK_METRIC: 0.5}


def test_reward_funcs__names_ranges_and_pickling():
    assert [f.__name__ for f in REWARD_FUNCS] == ["reward_format", "reward_validity", "reward_env", "reward_triage"]
    assert set(REWARD_RANGES) == {f.__name__ for f in REWARD_FUNCS}
    for func in REWARD_FUNCS:
        clone = pickle.loads(pickle.dumps(func))
        assert clone.__name__ == func.__name__
    assert pickle.loads(pickle.dumps(EnvReward(horizon=3))).horizon == 3
    assert REWARD_RANGES["reward_env"] == ENV_RANGE


def test_rewards__missing_columns_fail_clearly():
    with pytest.raises(ValueError, match="oracle_action"):
        reward_triage(prompts=[None], completions=[CLEAN])
    with pytest.raises(ValueError, match="snapshot"):
        EnvReward()(prompts=[None], completions=[CLEAN])
    with pytest.raises(ValueError, match="horizon"):
        EnvReward(horizon=-1)


def _snapshot_after(steps: int) -> bytes:
    from dime_gym.env import DimeEnv

    env = DimeEnv(task="cascading_failure")
    env.reset(seed=3)
    for _ in range(steps):
        env.step([0, 0, 0, 0])
    return env.snapshot()


SNAPSHOT = _snapshot_after(5)


@given(st.lists(st.text(max_size=200), min_size=1, max_size=6))
def test_reward_env__finite_and_in_range_for_any_text(texts):
    from dime_trainer.rewards import reward_env

    values = reward_env(prompts=[None] * len(texts), completions=texts, snapshot=[SNAPSHOT] * len(texts))
    assert len(values) == len(texts)
    assert all(math.isfinite(v) and ENV_RANGE[0] <= v <= ENV_RANGE[1] for v in values)


@pytest.mark.parametrize("continuation", ["oracle", "noop"])
@pytest.mark.parametrize("discount", [1.0, 0.5])
def test_reward_env__lookahead_is_a_discounted_mean_over_the_horizon(continuation, discount):
    from dime_gym.counterfactual import score_actions
    from dime_trainer.rewards import reward_env

    answer = '<reasoning>r</reasoning><action>{"command": "kubectl delete pod node-3"}</action>'
    one_step = reward_env(prompts=[None], completions=[answer], snapshot=[SNAPSHOT])
    looked = EnvReward(horizon=4, discount=discount, continuation=continuation)(prompts=[None], completions=[answer],
                                                                                 snapshot=[SNAPSHOT])
    scores = score_actions(SNAPSHOT, [[1, 3, 0, 0]], horizon=4, continuation=continuation)
    weights = [discount**t for t in range(5)]
    assert one_step == [pytest.approx(float(scores.rewards[0]), abs=0)]
    steps = [float(r) for r in _step_rewards(SNAPSHOT, [1, 3, 0, 0], 4, continuation)]
    assert looked == [pytest.approx(sum(w * r for w, r in zip(weights, steps)) / sum(weights), rel=1e-12)]
    assert looked != one_step


def _step_rewards(snapshot, action, horizon, continuation):
    """The rewards of ``action`` and the ``horizon`` continuation steps after it, stepped by hand."""
    import numpy as np

    from dime_gym.env import DimeEnv
    from dime_gym.oracle import oracle_policy

    env = DimeEnv(with_oracle=False)
    obs, _ = env.restore(snapshot)
    obs, reward, *_ = env.step(np.array(action))
    rewards = [reward]
    for _ in range(horizon):
        obs, reward, *_ = env.step(oracle_policy(obs) if continuation == "oracle" else np.zeros(4, dtype=np.int64))
        rewards.append(reward)
    return rewards


@pytest.mark.parametrize("kwargs, message", [
    ({"horizon": -1}, "horizon"), ({"discount": 0.0}, "discount"), ({"discount": float("nan")}, "discount"),
    ({"continuation": "random"}, "continuation"),
])
def test_reward_env__bad_lookahead_settings_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EnvReward(**kwargs)


def test_build_rewards__defaults_are_the_shipped_recipe():
    import yaml

    from dime_trainer.cli import CONFIG_DIR
    from dime_trainer.rewards import (
        DEFAULT_ENV_REWARD_CONTINUATION,
        DEFAULT_ENV_REWARD_DISCOUNT,
        DEFAULT_ENV_REWARD_HORIZON,
        DEFAULT_REWARD_WEIGHTS,
        REWARD_NAMES,
        build_rewards,
    )

    recipe = yaml.safe_load((CONFIG_DIR / "qwen3_8b_grpo.yaml").read_text())
    funcs, weights = build_rewards(recipe)
    assert [f.__name__ for f in funcs] == list(REWARD_NAMES)
    assert weights == list(DEFAULT_REWARD_WEIGHTS) == recipe["reward_weights"]
    env = funcs[2]
    assert (env.horizon, env.discount, env.continuation) == (
        DEFAULT_ENV_REWARD_HORIZON, DEFAULT_ENV_REWARD_DISCOUNT, DEFAULT_ENV_REWARD_CONTINUATION)
    defaults_funcs, defaults_weights = build_rewards({})
    assert defaults_weights == weights and pickle.dumps(defaults_funcs[2]) == pickle.dumps(env)
    # the environment decides among well-formed answers: format and validity together are worth
    # less than the env reward's own range, the oracle's agreement less still
    w = dict(zip(REWARD_NAMES, weights))
    span = {name: hi - lo for name, (lo, hi) in REWARD_RANGES.items()}
    assert w["reward_format"] * span["reward_format"] + w["reward_validity"] * span["reward_validity"] < w["reward_env"] * span["reward_env"]
    assert w["reward_triage"] * span["reward_triage"] < 0.2 * w["reward_env"] * span["reward_env"]


def test_build_rewards__overrides_and_bad_weights():
    from dime_trainer.rewards import build_rewards

    funcs, weights = build_rewards({"reward_weights": [1, 1, 1, 1], "env_reward_horizon": 0, "unrelated": "ignored"})
    assert weights == [1.0, 1.0, 1.0, 1.0] and funcs[2].horizon == 0
    for bad in ([1, 1, 1], [1, 1, float("inf"), 1]):
        with pytest.raises(ValueError, match="reward_weights must be 4 finite numbers"):
            build_rewards({"reward_weights": bad})


def test_reward_env__logs_the_flat_group_fraction_and_checks_lengths():
    from dime_trainer.rewards import FLAT_ENV_GROUPS_METRIC, reward_env

    other = _snapshot_after(9)
    same = '<reasoning>r</reasoning><action>{"command": "no_op"}</action>'
    restart = '<reasoning>r</reasoning><action>{"command": "kubectl delete pod node-3"}</action>'
    logged = {}
    reward_env(prompts=[None] * 4, completions=[same, same, same, restart], snapshot=[SNAPSHOT, SNAPSHOT, other, other],
               log_metric=logged.__setitem__)
    assert logged[FLAT_ENV_GROUPS_METRIC] == 0.5  # group 1 flat, group 2 split
    with pytest.raises(ValueError, match="snapshots"):
        reward_env(prompts=[None] * 2, completions=[same, same], snapshot=[SNAPSHOT])


# --- completions that are not text ----------------------------------------------------------------
class _Exploding:
    """A content whose ``__str__`` (and ``__repr__``) raises."""

    def __str__(self):
        raise RuntimeError("boom")

    __repr__ = __str__


def _deep_list(depth: int) -> list:
    nested: list = []
    for _ in range(depth):
        nested = [nested]
    return nested


# (case, completion): each is scored as an answer that is not text, never an exception
HOSTILE_COMPLETIONS = [
    ("deep_list", _deep_list(100_000)),
    ("deep_list_as_message_content", [{"role": "assistant", "content": _deep_list(100_000)}]),
    ("deep_list_as_dict_content", {"role": "assistant", "content": _deep_list(100_000)}),
    ("content_whose_str_raises", [{"role": "assistant", "content": _Exploding()}]),
    ("object_whose_str_raises", _Exploding()),
    ("number_content", [{"role": "assistant", "content": 42}]),
]


@pytest.mark.parametrize("case, completion", HOSTILE_COMPLETIONS, ids=[c[0] for c in HOSTILE_COMPLETIONS])
def test_rewards__non_text_completions_get_the_lowest_bounded_rewards(case, completion):
    from dime_trainer.rewards import reward_env

    completions = [completion, CLEAN]
    assert reward_format(prompts=[None] * 2, completions=completions) == [FORMAT_RANGE[0], 3.0]
    assert reward_validity(prompts=[None] * 2, completions=completions) == [VALIDITY_RANGE[0], 2.0]
    assert reward_triage(prompts=[None] * 2, completions=completions, oracle_action=[ORACLE_RESTART_3] * 2) == [-0.5, 1.0]
    values = reward_env(prompts=[None] * 2, completions=completions, snapshot=[SNAPSHOT] * 2)
    assert all(math.isfinite(v) and ENV_RANGE[0] <= v <= ENV_RANGE[1] for v in values)


def test_rewards__completions_that_are_not_a_list_fail_clearly():
    from dime_trainer.rewards import reward_env

    for func, kwargs in ((reward_format, {}), (reward_validity, {}), (reward_triage, {"oracle_action": []}),
                         (reward_env, {"snapshot": []})):
        with pytest.raises(TypeError, match="completions must be a list"):
            func(prompts=None, completions=None, **kwargs)
