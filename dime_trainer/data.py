"""Prompt datasets for GRPO: one row per visited cluster state, with its exact snapshot.

Rows come from rolling out DIME with a behaviour policy (the triage oracle with epsilon-random
exploration by default). Each row holds the chat ``prompt`` the text layer renders, where it
came from (``task``, ``seed``, ``step``), the serialized ``snapshot`` (the full state with its
random streams, so rewards are computed from the very state the prompt shows), the ``context``
the prompt was rendered with (previous command, its errors, logs) and the oracle's answer
(``oracle_action``, ``oracle_command``, ``oracle_rule``). Everything is seeded: the same
arguments give the same dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np

from dime_gym.scenarios import TASK_IDS
from dime_gym.splits import overlaps_evaluation, train_seeds

COLUMNS = ("prompt", "task", "seed", "step", "snapshot", "context", "oracle_action", "oracle_command", "oracle_rule")


def _episode_rows(task: str, seed: int, epsilon: float, max_steps: int | None) -> Iterable[dict]:
    """Rows of one behaviour episode (oracle with epsilon-random actions, seeded by ``seed``)."""
    import gymnasium as gym

    from dime_gym.commands import format_action
    from dime_gym.text import render_messages, step_report

    env = gym.make("DIME-v0", task=task)
    rng = np.random.default_rng([seed, TASK_IDS.index(task)])
    env.action_space.seed(int(rng.integers(2**31)))
    obs, info = env.reset(seed=seed)
    last_command = None
    step = 0
    while True:
        context = {"last_command": last_command, "action_errors": info["action_errors"], "logs": info.get("logs")}
        oracle = info["oracle"]
        yield {
            "prompt": render_messages(obs, {**info, **context}, last_command),
            "task": task,
            "seed": int(seed),
            "step": step,
            "snapshot": env.unwrapped.snapshot(),
            "context": json.dumps(context),
            "oracle_action": [int(x) for x in oracle["action"]],
            "oracle_command": oracle["command"],
            "oracle_rule": int(oracle["rule_id"]),
        }
        step += 1
        if max_steps is not None and step >= max_steps:
            return
        action = env.action_space.sample() if rng.random() < epsilon else oracle["action"]
        obs, _, _, truncated, info = env.step(action)
        last_command = step_report(format_action(action), info["action_errors"])
        if truncated:
            return


def _informative(rows: list[dict], min_reward_gap: float) -> list[dict]:
    """Rows where the best action's one-step reward beats the median action's (over every
    canonical action) by more than ``min_reward_gap``: choosing well matters there."""
    from dime_gym.commands import canonical_actions
    from dime_gym.counterfactual import score_actions

    candidates = np.array(canonical_actions(), dtype=np.int64)
    kept = []
    for row in rows:
        rewards = score_actions(row["snapshot"], candidates).rewards
        if float(rewards.max() - np.median(rewards)) > min_reward_gap:
            kept.append(row)
    return kept


def build_prompt_dataset(
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | int = 8,
    epsilon: float = 0.2,
    max_steps: int | None = None,
    dedupe: bool = True,
    balance_tasks: bool = False,
    min_reward_gap: float | None = 0.0,
    shuffle_seed: int | None = 0,
    progress: bool = True,
):
    """Roll out DIME and return a ``datasets.Dataset`` with the columns ``COLUMNS``.

    Args:
        tasks: Task ids (default: all 14).
        seeds: Episode seeds per task, or a count ``n`` meaning the first ``n`` training seeds
            (``dime_gym.splits.train_seeds``), which never overlap an evaluation split.
        epsilon: Probability of a uniformly random action instead of the oracle's.
        max_steps: Rows per episode at most (default: the whole episode).
        dedupe: Drop rows whose prompt repeats an earlier row's.
        balance_tasks: Subsample every task to the smallest task's row count.
        min_reward_gap: Drop states where the best action's one-step reward beats the median
            action's by no more than this (little to learn there); ``None`` keeps every state.
        shuffle_seed: Shuffle rows with this seed (``None``: keep rollout order).
        progress: Show a progress bar over episodes.
    """
    from datasets import Dataset

    tasks = list(TASK_IDS if tasks is None else tasks)
    unknown = sorted(set(tasks) - set(TASK_IDS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid: {', '.join(TASK_IDS)}")
    seed_list = list(train_seeds(seeds) if isinstance(seeds, int) else seeds)
    if not seed_list:
        raise ValueError("seeds is empty")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    leaked = overlaps_evaluation(seed_list)
    if leaked:
        import warnings

        warnings.warn(f"{len(leaked)} dataset seed(s) belong to an evaluation split (e.g. {leaked[0]}); "
                      "evaluation on them will overstate generalisation", stacklevel=2)
    episodes = [(task, seed) for task in tasks for seed in seed_list]
    iterator = episodes
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(episodes, desc="DIME rollouts", unit="episode")
    by_task: dict[str, list[dict]] = {task: [] for task in tasks}
    seen: set[str] = set()
    for task, seed in iterator:
        for row in _episode_rows(task, seed, epsilon, max_steps):
            key = row["prompt"][-1]["content"]
            if dedupe and key in seen:
                continue
            seen.add(key)
            by_task[task].append(row)
    if min_reward_gap is not None:
        by_task = {task: _informative(rows, min_reward_gap) for task, rows in by_task.items()}
    rng = np.random.default_rng(0 if shuffle_seed is None else shuffle_seed)
    if balance_tasks:
        smallest = min(len(rows) for rows in by_task.values())
        by_task = {task: [rows[i] for i in sorted(rng.choice(len(rows), smallest, replace=False))] for task, rows in by_task.items()}
    rows = [row for task in tasks for row in by_task[task]]
    if shuffle_seed is not None:
        rows = [rows[i] for i in rng.permutation(len(rows))]
    if not rows:
        raise ValueError("the dataset is empty: every state was filtered out; lower min_reward_gap or add seeds")
    return Dataset.from_dict({column: [row[column] for row in rows] for column in COLUMNS})


def prompt_from_row(row: dict, system_prompt: str | None = None) -> list[dict[str, str]]:
    """Re-render a row's prompt from its snapshot and context (the check that a row's snapshot
    is the state its prompt shows)."""
    from dime_gym.env import DimeEnv
    from dime_gym.text import SYSTEM_PROMPT, render_messages

    context = json.loads(row["context"])
    obs, info = DimeEnv(with_oracle=False).restore(row["snapshot"])
    info.update((k, v) for k, v in context.items() if v is not None)
    return render_messages(obs, info, context["last_command"], system_prompt or SYSTEM_PROMPT)


BUILD_FILE = "dime_build.json"  # the arguments a saved dataset was built with


def save_dataset(dataset, path: str, build_args: dict | None = None) -> None:
    """Save with HF ``datasets`` (``Dataset.save_to_disk``), plus the build arguments."""
    dataset.save_to_disk(path)
    with open(os.path.join(path, BUILD_FILE), "w") as fh:
        json.dump(build_args or {}, fh, indent=1, sort_keys=True)


def check_snapshots(dataset, path: str = "the dataset", batch_size: int = 4096) -> None:
    """Decode every row's snapshot (about 10 us a row): the reward function restores them, and
    a snapshot is bytes from disk, so a bad one is refused here, naming its row, rather than
    in the middle of training. Raises ``ValueError``."""
    from dime_gym.snapshot import decode_snapshot

    row = 0
    for batch in dataset.select_columns(["snapshot"]).iter(batch_size=batch_size):
        for snapshot in batch["snapshot"]:
            try:
                decode_snapshot(snapshot)
            except (TypeError, ValueError) as exc:
                if row == 0:
                    raise ValueError(f"{path} was built by an incompatible DIME: {exc}; rebuild it") from None
                raise ValueError(f"{path}: row {row} (task {dataset[row]['task']!r}, seed {dataset[row]['seed']}, step "
                                 f"{dataset[row]['step']}) holds an invalid snapshot: {exc}; rebuild the dataset") from None
            row += 1


def load_dataset(path: str, expect_build_args: dict | None = None):
    """Load a dataset saved by :func:`save_dataset`, checking it has DIME's columns, that every
    row's snapshot decodes (:func:`check_snapshots`) and, if given, that it was built with
    ``expect_build_args``."""
    from datasets import load_from_disk

    dataset = load_from_disk(path)
    missing = [c for c in COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{path} is not a DIME prompt dataset: missing column(s) {missing}")
    check_snapshots(dataset, path)
    if expect_build_args is not None:
        build_file = os.path.join(path, BUILD_FILE)
        saved = json.load(open(build_file)) if os.path.exists(build_file) else {}
        expected = json.loads(json.dumps(expect_build_args))  # the JSON view, as saved
        changed = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))
        if changed:
            shown = ", ".join(f"{k}: {saved.get(k)!r} -> {expected.get(k)!r}" for k in changed)
            raise ValueError(f"the dataset in {path} was built with other arguments ({shown}); "
                             "use another dataset_path, or delete it to rebuild")
    return dataset
