"""Policy ordering the graders must produce, and the healthy design point.

These are the properties the task calibration promises: reference solution and triage oracle
beat doing nothing on every task, and degenerate policies (throttle everything, spam restarts,
scale-ups or log queries) score below doing nothing on every task.
"""

from __future__ import annotations

import numpy as np
import pytest

from dime_gym.core.dynamics import step_batch_serial
from dime_gym.core.state import N_NODES
from dime_gym.policies import DEGENERATE_POLICIES
from dime_gym.scenarios import TASK_IDS, build_episode
from dime_gym.scenarios.graders import grade
from dime_trainer.evaluation import builtin_scores

SEEDS = list(range(6))


@pytest.fixture(scope="module")
def scores():
    policies = ["noop", "oracle", "reference", *DEGENERATE_POLICIES]
    results = builtin_scores(policies, TASK_IDS, SEEDS)
    return {p: {t: float(np.mean(v)) for t, v in by_task.items()} for p, by_task in results.items()}


@pytest.mark.parametrize("task", TASK_IDS)
def test_oracle__beats_noop_on_every_task(scores, task):
    assert scores["oracle"][task] > scores["noop"][task]


@pytest.mark.parametrize("task", TASK_IDS)
def test_reference_solution__helps_on_every_task(scores, task):
    assert scores["reference"][task] > scores["noop"][task]


@pytest.mark.parametrize("task", TASK_IDS)
@pytest.mark.parametrize("policy", DEGENERATE_POLICIES)
def test_degenerate_policy__scores_below_noop(scores, task, policy):
    assert scores[policy][task] < scores["noop"][task]


@pytest.mark.parametrize("task", TASK_IDS)
def test_fault__really_hurts_noop(scores, task):
    """Left alone, every task's fault costs at least 5 points against a healthy cluster."""
    assert scores["noop"][task] < healthy_noop_score() - 0.05


def test_oracle__mean_gap_over_noop_is_large(scores):
    gap = np.mean([scores["oracle"][t] - scores["noop"][t] for t in TASK_IDS])
    assert gap >= 0.2


def test_throttle_everything__scores_zero(scores):
    assert max(scores["throttle_all"].values()) == 0.0


def _run_healthy(seed: int, steps: int):
    episode = build_episode("healthy", seed)
    params = episode.params.reshape(1).copy()
    states = episode.state.reshape(1).copy()
    noop = np.zeros((1, 4), dtype=np.int64)
    for _ in range(steps):
        step_batch_serial(params, states, noop)
        yield states[0]


def healthy_noop_score(seed: int = 0, steps: int = 40) -> float:
    s = None
    for s in _run_healthy(seed, steps):
        pass
    return grade(s)


@pytest.mark.parametrize("seed", range(20))
def test_healthy_cluster__stays_healthy_for_200_steps(seed):
    for s in _run_healthy(seed, 200):
        assert not s["failed"].any(), f"node failed at step {s['step']}"
        assert s["latency_p99_ms"] < 200.0, f"p99 {s['latency_p99_ms']:.0f} ms at step {s['step']}"
        assert s["reward"] > 0.0
    assert s["cpu"][1:].max() < 0.7 and s["cpu"][0] < 0.6
    assert len(s["cpu"]) == N_NODES
