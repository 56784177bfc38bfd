"""The benchmark rewards operating, not blanket responses: closed-loop policies against the
observation-blind probe family, and the one-step rewards the trainer learns from.

A few seeds per task keep this fast; ``benchmarks/bench_discrimination.py --seeds 100`` and the
README tables show the same on the full public split.
"""

from __future__ import annotations

import numpy as np
import pytest

from dime_gym.core.actions import NO_OP, RESTART, THROTTLE
from dime_gym.counterfactual import score_actions
from dime_gym.env import DimeEnv
from dime_gym.oracle import oracle_policy
from dime_gym.policies import BLIND_POLICIES, BlindPolicy, make_policy
from dime_gym.scenarios import TASK_IDS
from dime_gym.commands import canonical_actions
from dime_trainer.evaluation.probes import (
    CLOSED_LOOP_POLICIES,
    MAX_BLIND_INDEX_RATIO,
    MIN_BLIND_MARGIN,
    MIN_NOOP_MARGIN,
    best_blind_by_index,
    dime_index,
    policy_summaries,
    task_margins,
)

SEEDS = list(range(6))


@pytest.fixture(scope="module")
def summaries():
    return policy_summaries(["noop", *CLOSED_LOOP_POLICIES, *BLIND_POLICIES], TASK_IDS, SEEDS)


@pytest.fixture(scope="module")
def margins(summaries):
    return {row.task: row for row in task_margins(summaries, CLOSED_LOOP_POLICIES, BLIND_POLICIES)}


def test_blind_family__covers_every_throttle_level_and_scale_count():
    assert len(BLIND_POLICIES) == 21 * 5 == len(set(BLIND_POLICIES))
    assert "blind_t100_s0" in BLIND_POLICIES and "blind_t0_s4" in BLIND_POLICIES
    env = DimeEnv(task="traffic_spike", with_oracle=False)
    obs, info = env.reset(seed=0)
    policy = make_policy("blind_t80_s2")
    actions = []
    for _ in range(5):
        action = policy(obs, info)
        actions.append(action.tolist())
        obs, _, _, _, info = env.step(action)
    assert actions == [[THROTTLE, 0, 0, 16], [3, 0, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert make_policy("blind_t100_s0").plan == ()  # doing nothing is the family's first member


@pytest.mark.parametrize("name", ["blind_t81_s0", "blind_t105_s0", "blind_t80_s5", "blind_tx_s0"])
def test_blind_family__bad_names_are_refused_with_the_valid_form(name):
    with pytest.raises(ValueError, match="blind_t<percent>_s<scale-ups>"):
        make_policy(name)


def test_blind_policy__ignores_the_observation():
    policy = BlindPolicy(14, 1)
    a = policy({"step": np.array([0])}, {})
    b = policy({"step": np.array([0]), "cpu_loads": np.ones(8)}, {"anything": 1})
    assert a.tolist() == b.tolist() == [THROTTLE, 0, 0, 14]


@pytest.mark.parametrize("task", TASK_IDS)
def test_closed_loop__beats_every_blind_probe_and_noop(margins, task):
    row = margins[task]
    assert row.blind_margin >= MIN_BLIND_MARGIN, (
        f"{task}: best closed-loop {row.best_closed} {row.best_closed_score:.3f} vs blind {row.best_blind} "
        f"{row.best_blind_score:.3f}")
    assert row.noop_margin >= MIN_NOOP_MARGIN, f"{task}: {row.best_closed} {row.best_closed_score:.3f} vs noop {row.noop_score:.3f}"


def test_best_blind_probe__index_at_most_half_the_oracles(summaries):
    name, index = best_blind_by_index(summaries, BLIND_POLICIES)
    assert index <= MAX_BLIND_INDEX_RATIO * dime_index(summaries["oracle"]), (name, index)


def test_planner__beats_the_oracle_on_the_index(summaries):
    """The lookahead planner shows the headroom above the seed's rules."""
    assert dime_index(summaries["planner"]) > dime_index(summaries["oracle"]) + 10


def _oracle_visited_snapshots(tasks, seeds):
    env = DimeEnv(with_oracle=False)
    for task in tasks:
        for seed in seeds:
            obs, _ = env.reset(seed=seed, options={"task": task})
            for _ in range(env.episode.task.episode_steps):
                yield env.state_record, env.snapshot()
                obs, *_ = env.step(oracle_policy(obs))


@pytest.fixture(scope="module")
def visited():
    return list(_oracle_visited_snapshots(TASK_IDS, range(4)))


def test_reward__throttle_zero_is_never_the_best_step_with_the_database_down(visited):
    candidates = np.array(canonical_actions(), dtype=np.int64)
    shed_all = [i for i, a in enumerate(candidates) if a[0] == THROTTLE and a[3] == 0]
    db_down = [snap for state, snap in visited if state["failed"][0] or state["restart_left"][0]]
    assert len(db_down) >= 10  # the oracle does meet a dead database (pool deadlock, overload)
    for snap in db_down:
        rewards = score_actions(snap, candidates).rewards
        assert rewards[shed_all[0]] < rewards.max()
        assert rewards[shed_all[0]] < rewards[0]  # no better than waiting: serving nothing earns nothing


@pytest.mark.parametrize("reward", ["one_step", "trainer_default"])
def test_reward__restarting_a_crashed_node_beats_waiting_within_the_trainers_horizon(visited, reward):
    """A restart that brings capacity back must not read as a pure cost, neither in one step nor
    in the trainer's default ``reward_env`` (its lookahead with the oracle continuing). Where
    kubelet restarts the node in that very step the two are equal."""
    from dime_trainer.evaluation.probes import clean_answer
    from dime_trainer.rewards import EnvReward, build_rewards

    env_reward = EnvReward() if reward == "one_step" else build_rewards({})[0][2]
    compared = strictly = 0
    for state, snap in visited:
        for node in np.flatnonzero(state["failed"]):
            answers = [clean_answer("no_op"), clean_answer(f"kubectl delete pod node-{node}")]
            wait, restart = env_reward(prompts=[None, None], completions=answers, snapshot=[snap, snap])
            assert restart >= wait, (int(state["step"]), int(node))
            compared += 1
            strictly += restart > wait
    assert compared >= 100 and strictly >= 0.9 * compared
