"""Counterfactual scoring: K candidates from one snapshot share the random stream, so equal
actions earn equal rewards, and every result equals stepping a restored DimeEnv by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dime_gym.core.actions import ACTION_NVEC, UNPARSABLE
from dime_gym.core.reward import REWARD_COMPONENTS
from dime_gym.counterfactual import score_actions
from dime_gym.env import UNPARSABLE_ANSWER, DimeEnv
from dime_gym.oracle import oracle_policy
from dime_gym.scenarios import get_task
from dime_gym.snapshot import decode_snapshot


def _snapshot(task: str, seed: int = 0, steps: int = 6) -> bytes:
    env = DimeEnv(task=task, with_oracle=False)
    env.reset(seed=seed)
    for _ in range(steps):
        env.step(np.zeros(4, dtype=np.int64))
    return env.snapshot()


def _candidates(seed: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, ACTION_NVEC, size=(k, 4))
    a[0] = 0
    a[1] = (UNPARSABLE, 0, 0, 0)
    return a


def _by_hand(snap: bytes, action, horizon: int, policy, discount: float = 1.0):
    """Restore a DimeEnv and step the candidate, then the policy, one step at a time."""
    env = DimeEnv(with_oracle=False)
    env.restore(snap)
    obs, reward, _, truncated, info = env.step(UNPARSABLE_ANSWER if action[0] == UNPARSABLE else action)
    first = (reward, info["reward_components"], env.state_record["action_errors"])
    total, weight, steps = reward, 1.0, 1
    for _ in range(horizon):
        if truncated:
            break
        weight *= discount
        obs, reward, _, truncated, info = env.step(policy(obs))
        total += weight * reward
        steps += 1
    return first, total, info["score"], steps


def test_counterfactual__identical_actions_earn_identical_rewards():
    snap = _snapshot("retry_storm")
    actions = np.tile(np.array([[4, 0, 0, 8]]), (16, 1))
    scores = score_actions(snap, actions, horizon=3, continuation="noop")
    assert len(set(scores.rewards.tolist())) == 1 and len(set(scores.returns.tolist())) == 1
    for name in REWARD_COMPONENTS:
        assert len(set(scores.reward_components[name].tolist())) == 1
    # distinct actions from the same state do differ
    assert len(set(score_actions(snap, _candidates(0, 16)).rewards.tolist())) > 1


@pytest.mark.parametrize("task", ["retry_storm", "zombie_node", "black_swan_az_failure", "memory_leak_slow_burn"])
def test_counterfactual__one_step_rewards_equal_stepping_a_restored_env(task):
    snap = _snapshot(task, seed=2)
    actions = _candidates(1, 12)
    scores = score_actions(snap, actions)
    assert scores.rewards.shape == (12,) and np.array_equal(scores.returns, scores.rewards)
    assert scores.steps.tolist() == [1] * 12
    for k, a in enumerate(actions):
        (reward, components, errors), _, score, _ = _by_hand(snap, a, 0, None)
        assert scores.rewards[k] == reward
        assert [scores.reward_components[n][k] for n in REWARD_COMPONENTS] == list(components.values())
        assert scores.action_errors[k] == errors
        assert scores.scores[k] == score
    assert scores.action_errors[1] != 0  # the unparsable row is charged


class _BatchedNoop:
    batched = True

    def __call__(self, obs):
        return np.zeros((obs["step"].shape[0], 4), dtype=np.int64)


@pytest.mark.parametrize(
    "continuation,policy,discount",
    [
        ("noop", lambda obs: np.zeros(4, dtype=np.int64), 1.0),
        ("oracle", oracle_policy, 1.0),
        (lambda obs: np.array([4, 0, 0, 12]), lambda obs: np.array([4, 0, 0, 12]), 0.9),
        (_BatchedNoop(), lambda obs: np.zeros(4, dtype=np.int64), 0.5),
    ],
    ids=["noop", "oracle", "callable", "batched"],
)
def test_counterfactual__h_step_returns_equal_stepping_a_restored_env(continuation, policy, discount):
    snap = _snapshot("thundering_herd", seed=4, steps=3)
    actions = _candidates(2, 6)
    scores = score_actions(snap, actions, horizon=4, continuation=continuation, discount=discount)
    for k, a in enumerate(actions):
        (reward, _, _), total, score, steps = _by_hand(snap, a, 4, policy, discount)
        assert scores.rewards[k] == reward
        assert scores.returns[k] == pytest.approx(total, rel=1e-12, abs=1e-12)
        assert scores.scores[k] == score
        assert scores.steps[k] == steps == 5


def test_counterfactual__horizon_stops_at_the_episode_end():
    steps = get_task("node_failure").episode_steps
    snap = _snapshot("node_failure", steps=steps - 2)
    scores = score_actions(snap, np.zeros((3, 4), dtype=np.int64), horizon=10, continuation="noop")
    assert scores.steps.tolist() == [2, 2, 2]
    _, total, _, _ = _by_hand(snap, np.zeros(4, dtype=np.int64), 10, lambda obs: np.zeros(4, dtype=np.int64))
    assert scores.returns[0] == pytest.approx(total, rel=1e-12)


def test_counterfactual__accepts_decoded_snapshots_and_serial_equals_parallel():
    snap = _snapshot("hot_shard_skew")
    actions = np.random.default_rng(3).integers(0, ACTION_NVEC, size=(200, 4))
    a = score_actions(snap, actions, parallel=False)
    b = score_actions(decode_snapshot(snap), actions, parallel=True)
    assert np.array_equal(a.rewards, b.rewards) and np.array_equal(a.scores, b.scores)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"actions": [[0, 8, 0, 0]]}, r"actions\[0\] field node=8"),
        ({"actions": [[7, 0, 0, 0]]}, "kind=7"),
        ({"actions": [0, 0, 0, 0]}, "shape"),
        ({"actions": [[0, 0, 0, 0]], "horizon": 2}, "continuation"),
        ({"actions": [[0, 0, 0, 0]], "horizon": 2, "continuation": "random"}, "continuation"),
        ({"actions": [[0, 0, 0, 0]], "horizon": -1}, "horizon"),
        ({"actions": [[0, 0, 0, 0]], "snapshot": b"garbage"}, "truncated"),
    ],
)
def test_counterfactual__bad_input_raises_naming_the_problem(kwargs, fragment):
    kwargs = {"snapshot": _snapshot("traffic_spike", steps=1), **kwargs}
    with pytest.raises(ValueError, match=fragment):
        score_actions(**kwargs)


def test_counterfactual__an_ended_episode_cannot_be_scored():
    snap = _snapshot("traffic_spike", steps=get_task("traffic_spike").episode_steps)
    with pytest.raises(ValueError, match="ended"):
        score_actions(snap, np.zeros((2, 4), dtype=np.int64))


def test_score_actions__continuation_may_answer_unparsable_and_errors_name_the_candidate():
    env = DimeEnv(task="retry_storm")
    env.reset(seed=2)
    snap = env.snapshot()
    scores = score_actions(snap, np.zeros((2, 4), dtype=np.int64), horizon=2, continuation=lambda obs: UNPARSABLE_ANSWER)
    assert np.all(scores.steps == 3) and np.isfinite(scores.returns).all()
    with pytest.raises(ValueError, match="candidate 0"):
        score_actions(snap, np.zeros((2, 4), dtype=np.int64), horizon=1, continuation=lambda obs: [9, 0, 0, 0])
    with pytest.raises(ValueError, match="discount"):
        score_actions(snap, np.zeros((1, 4), dtype=np.int64), horizon=1, continuation="noop", discount=float("nan"))
