"""The recipe's rewards teach operating: the policy they converge to (in every state the command
whose clean answer earns the highest weighted reward) is a good operator on the benchmark.

``benchmarks/bench_reward_design.py`` measures the same on more (held-out) seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from dime_gym.scenarios import TASK_IDS
from dime_trainer.cli import CONFIG_DIR
from dime_trainer.evaluation import builtin_scores
from dime_trainer.evaluation.probes import reward_greedy_episodes
from dime_trainer.rewards import OLD_REWARD_DESIGN, build_rewards

SEEDS = [0, 1]


def _mean_by_task(episodes) -> dict[str, float]:
    by_task: dict[str, list[float]] = {}
    for e in episodes:
        by_task.setdefault(e["task"], []).append(e["score"])
    return {t: float(np.mean(v)) for t, v in by_task.items()}


@pytest.fixture(scope="module")
def recipe_greedy():
    recipe = yaml.safe_load((CONFIG_DIR / "qwen3_8b_grpo.yaml").read_text())
    return reward_greedy_episodes(*build_rewards(recipe), TASK_IDS, SEEDS)


@pytest.mark.slow  # ~2 minutes: 103 candidate answers scored with a 2-step oracle lookahead every step
def test_recipe_rewards__greedy_policy_scores_well_and_never_sheds_everything(recipe_greedy):
    scores = _mean_by_task(recipe_greedy)
    oracle = {t: float(np.mean(v)) for t, v in builtin_scores(["oracle"], TASK_IDS, SEEDS)["oracle"].items()}
    assert np.mean(list(scores.values())) >= 0.80
    for task in TASK_IDS:
        assert scores[task] >= oracle[task] - 0.03, (task, scores[task], oracle[task])
    assert not any(c == "kubectl throttle ingress --rate=0.00" for e in recipe_greedy for c in e["commands"])


@pytest.mark.slow
def test_recipe_rewards__beat_the_old_equal_weight_one_step_design(recipe_greedy):
    old = _mean_by_task(reward_greedy_episodes(*build_rewards(OLD_REWARD_DESIGN), TASK_IDS, SEEDS))
    new = _mean_by_task(recipe_greedy)
    assert np.mean(list(new.values())) > np.mean(list(old.values())) + 0.02
