"""Does the benchmark reward only operating? Closed-loop policies against observation-blind probes.

A valid DIME task punishes both doing nothing and any blanket response chosen without looking
(``dime_gym.policies.BLIND_POLICIES``: a throttle level held from step 0, with 0-4 scale-ups at the
start), while a policy that reads the cluster and acts on the fault does clearly better. This
module measures that, for the test suite and ``benchmarks/bench_discrimination.py``:

* per task, the best closed-loop policy (``CLOSED_LOOP_POLICIES``) beats the best blind probe by
  ``MIN_BLIND_MARGIN`` and doing nothing by ``MIN_NOOP_MARGIN`` (mean final score over seeds);
* the best blind probe's DIME index (one probe for all tasks) is at most ``MAX_BLIND_INDEX_RATIO``
  of the triage oracle's.

It also plays the policy a set of GRPO reward functions converges to (``reward_greedy_episodes``):
in every state, the canonical command whose clean answer earns the highest weighted reward. A
reward design is faithful to the benchmark when that policy scores well on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dime_trainer.evaluation.runners import make_jobs, run_array_policy
from dime_trainer.evaluation.summary import summarize

CLOSED_LOOP_POLICIES = ("oracle", "threshold", "reference", "planner")
MIN_BLIND_MARGIN = 0.10
MIN_NOOP_MARGIN = 0.20
MAX_BLIND_INDEX_RATIO = 0.5


def clean_answer(command: str) -> str:
    """``command`` written in the required answer format."""
    return f'<reasoning>Acting on the cluster state.</reasoning>\n<action>{{"command": "{command}"}}</action>'


def reward_greedy_episodes(funcs: Sequence, weights: Sequence[float], tasks: Sequence[str], seeds: Sequence[int]) -> list[dict]:
    """Play each (task, seed) choosing, every step, the canonical command whose clean answer has
    the highest ``sum(w * f(...))`` over the reward functions (ties to the first, no_op), with
    the row columns a prompt dataset would hold (``snapshot``, ``oracle_action``).

    Returns:
        One ``{"task", "seed", "score", "commands"}`` per episode (the commands it chose).
    """
    import numpy as np

    from dime_gym.env import DimeEnv
    from dime_gym.commands import canonical_actions, format_action

    actions = np.array(canonical_actions(), dtype=np.int64)
    commands = [format_action(a) for a in actions]
    answers = [clean_answer(c) for c in commands]
    k = len(answers)
    env = DimeEnv()
    episodes = []
    for task in tasks:
        for seed in seeds:
            obs, info = env.reset(seed=int(seed), options={"task": task})
            chosen = []
            for _ in range(env.episode.task.episode_steps):
                columns = {"snapshot": [env.snapshot()] * k, "oracle_action": [list(info["oracle"]["action"])] * k}
                total = np.zeros(k)
                for func, weight in zip(funcs, weights, strict=True):
                    total += weight * np.asarray(func(prompts=[None] * k, completions=answers, **columns), dtype=np.float64)
                best = int(np.argmax(total))
                chosen.append(commands[best])
                obs, _, _, _, info = env.step(actions[best])
            episodes.append({"task": task, "seed": int(seed), "score": float(info["score"]), "commands": chosen})
    return episodes


def policy_summaries(policies: Sequence[str], tasks: Sequence[str], seeds: Sequence[int]) -> dict[str, dict]:
    """``summarize`` of each built-in policy over ``tasks`` x ``seeds`` (no files written)."""
    from dime_gym.policies import make_policy

    out = {}
    for name in policies:
        episodes: list[dict] = []
        run_array_policy(make_policy(name), make_jobs(tasks, seeds), episodes.append, record_steps=False)
        out[name] = summarize(episodes, run={"policy": name}, tasks=tasks)
    return out


@dataclasses.dataclass(frozen=True)
class TaskMargins:
    """One task: the best closed-loop and best blind policy, their mean scores and noop's."""

    task: str
    best_closed: str
    best_closed_score: float
    best_blind: str
    best_blind_score: float
    noop_score: float

    @property
    def blind_margin(self) -> float:
        return self.best_closed_score - self.best_blind_score

    @property
    def noop_margin(self) -> float:
        return self.best_closed_score - self.noop_score

    @property
    def ok(self) -> bool:
        return self.blind_margin >= MIN_BLIND_MARGIN and self.noop_margin >= MIN_NOOP_MARGIN


def task_margins(summaries: dict[str, dict], closed: Sequence[str], blind: Sequence[str]) -> list[TaskMargins]:
    """Per task (in the order of noop's summary): best of ``closed`` vs best of ``blind`` and noop."""
    def score(policy: str, task: str) -> float:
        return summaries[policy]["tasks"][task]["score_mean"]

    rows = []
    for task in summaries["noop"]["tasks"]:
        best_closed = max(closed, key=lambda p: score(p, task))
        best_blind = max(blind, key=lambda p: score(p, task))
        rows.append(TaskMargins(task, best_closed, score(best_closed, task), best_blind, score(best_blind, task),
                                score("noop", task)))
    return rows


def dime_index(summary: dict) -> float:
    """The DIME index of a summary (over the tasks it holds, for runs on a subset)."""
    return summary["overall"]["dime_index_partial"]


def best_blind_by_index(summaries: dict[str, dict], blind: Sequence[str]) -> tuple[str, float]:
    """The blind probe with the highest DIME index, and that index."""
    name = max(blind, key=lambda p: dime_index(summaries[p]))
    return name, dime_index(summaries[name])


__all__ = [
    "CLOSED_LOOP_POLICIES",
    "MAX_BLIND_INDEX_RATIO",
    "MIN_BLIND_MARGIN",
    "MIN_NOOP_MARGIN",
    "TaskMargins",
    "best_blind_by_index",
    "clean_answer",
    "reward_greedy_episodes",
    "dime_index",
    "policy_summaries",
    "task_margins",
]
