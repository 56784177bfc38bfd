"""The 14 DIME tasks as data: the task table, episode construction, graders, reference solutions.

``build_episode(task_id, seed)`` turns a task record and a seed into the ``(params, state)``
records the core kernels step, plus the episode facts (fault step, faulty node, ...), through
the same compiled construction that resets and autoresets every env (``scenarios.episodes``).
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from dime_gym.core.rng import as_uint64
from dime_gym.core.state import MAX_EPISODE_STEPS, PARAMS_DTYPE, STATE_DTYPE
from dime_gym.scenarios.episodes import EpisodeTables, make_tables, start_episode
from dime_gym.scenarios.faults import MAX_FACTS, SETUP_HOOKS
from dime_gym.scenarios.tasks import TASKS, TEST_TASKS, ReferenceStep, Task, TaskId
from dime_gym.scenarios.trace import bundled_trace, load_trace_csv


def _index_tasks(tasks: tuple[Task, ...]) -> dict[str, Task]:
    index: dict[str, Task] = {}
    for task in tasks:
        if task.id in index:
            raise ValueError(f"duplicate task id {task.id!r} in the task table")
        index[task.id] = task
    declared = set(typing.get_args(TaskId))
    if set(index) != declared:
        raise ValueError(f"task table {sorted(index)} does not match TaskId {sorted(declared)}")
    return index


TASKS_BY_ID: dict[str, Task] = _index_tasks(TASKS)
TASK_IDS: tuple[str, ...] = tuple(t.id for t in TASKS)
DEFAULT_TASK: TaskId = "traffic_spike"
TEST_TASK_IDS: tuple[str, ...] = tuple(t.id for t in TEST_TASKS)
if len(set(TEST_TASK_IDS)) != len(TEST_TASKS) or set(TEST_TASK_IDS) & set(TASKS_BY_ID):
    raise ValueError(f"test task ids {TEST_TASK_IDS} must be distinct and not benchmark task ids")
_ANY_TASK_BY_ID: dict[str, Task] = {**TASKS_BY_ID, **{t.id: t for t in TEST_TASKS}}


def get_task(task_id: str) -> Task:
    """The task record for ``task_id`` (a benchmark task or one of ``TEST_TASK_IDS``);
    ``ValueError`` listing the benchmark's ids otherwise."""
    try:
        return _ANY_TASK_BY_ID[task_id]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {task_id!r}; valid tasks: {', '.join(TASK_IDS)}") from None


def _task_codes(tasks: tuple[Task, ...]) -> dict[str, int]:
    """Each task's code: the index of its setup hook in ``SETUP_HOOKS`` (one hook per task)."""
    codes = {}
    for task in tasks:
        if task.setup not in SETUP_HOOKS:
            raise ValueError(f"task {task.id!r}: its setup is not a hook of scenarios.faults.SETUP_HOOKS")
        if len(task.fact_names) > MAX_FACTS:
            raise ValueError(f"task {task.id!r} names {len(task.fact_names)} facts; at most {MAX_FACTS}")
        codes[task.id] = SETUP_HOOKS.index(task.setup)
    if sorted(codes.values()) != list(range(len(SETUP_HOOKS))):
        raise ValueError("each task needs its own setup hook, and each hook of SETUP_HOOKS a task")
    return codes


TASK_CODES: dict[str, int] = _task_codes(tuple(_ANY_TASK_BY_ID.values()))
TASKS_BY_CODE: dict[int, Task] = {code: _ANY_TASK_BY_ID[task_id] for task_id, code in TASK_CODES.items()}
TABLES: EpisodeTables = make_tables([TASKS_BY_CODE[code].episode_steps for code in range(len(TASKS_BY_CODE))],
                                    [TASKS_BY_CODE[code].cloud_credits for code in range(len(TASKS_BY_CODE))])
TRACE_TASK = "level_5_alibaba_trace"


def trace_load(trace_path: str | None = None) -> np.ndarray:
    """The per-step load the trace task replays: the CSV at ``trace_path`` (re-read when the
    file changes) or the bundled trace.

    Raises:
        ValueError: an unreadable or invalid CSV, or one shorter than the task.
    """
    load = load_trace_csv(trace_path, float(TABLES.params_template[0]["base_rate_rps"])) if trace_path else bundled_trace()
    steps = _ANY_TASK_BY_ID[TRACE_TASK].episode_steps
    if len(load) < steps:
        raise ValueError(f"trace has {len(load)} steps; task {TRACE_TASK} needs at least {steps}")
    return load


@dataclasses.dataclass(frozen=True)
class Episode:
    """One episode: its task, params, initial state and facts (what the scenario decided)."""

    task: Task
    params: np.ndarray  # PARAMS_DTYPE scalar record
    state: np.ndarray  # STATE_DTYPE scalar record
    facts: dict


def facts_dict(task: Task, facts_row: np.ndarray) -> dict[str, int]:
    """An episode's facts by name, from its row of the ``(N, MAX_FACTS)`` facts array."""
    return dict(zip(task.fact_names, facts_row[: len(task.fact_names)].tolist()))


def build_episode(task_id: str, seed: int, **options) -> Episode:
    """Build the params, initial state and facts of one episode of ``task_id``.

    Args:
        task_id: one of ``TASK_IDS`` (or ``TEST_TASK_IDS``).
        seed: any integer (taken mod 2**64); the same seed gives the same episode.
        **options: task options (``trace_path`` for the trace task).

    Raises:
        ValueError: unknown task, unknown option, or an invalid trace file.
    """
    task = get_task(task_id)
    unknown = set(options) - set(task.options)
    if unknown:
        valid = ", ".join(task.options) or "none"
        raise ValueError(f"task {task_id!r} got unknown option(s) {sorted(unknown)}; valid options: {valid}")
    load = trace_load(options.get("trace_path")) if task.options else bundled_trace()
    params = np.zeros(1, dtype=PARAMS_DTYPE)
    states = np.zeros(1, dtype=STATE_DTYPE)
    start_states = np.zeros(1, dtype=STATE_DTYPE)
    facts = np.zeros((1, MAX_FACTS), dtype=np.int64)
    step_limit = np.zeros(1, dtype=np.int64)
    start_episode(0, TASK_CODES[task.id], as_uint64(seed), params, states, start_states, facts, step_limit,
                  MAX_EPISODE_STEPS, TABLES.as_tuple(), load)
    return Episode(task=task, params=params.reshape(()), state=states.reshape(()), facts=facts_dict(task, facts[0]))


def reference_commands(episode: Episode) -> dict[int, str]:
    """The task's reference solution for this episode: step -> kubectl command."""
    schedule: dict[int, str] = {}
    for ref in episode.task.reference_solution:
        step = int(episode.facts[ref.anchor]) + ref.offset
        if 0 <= step < episode.task.episode_steps:
            schedule[step] = ref.command.format(**episode.facts)
    return schedule


__all__ = [
    "DEFAULT_TASK",
    "Episode",
    "ReferenceStep",
    "TASKS",
    "TASKS_BY_ID",
    "TASK_CODES",
    "TASK_IDS",
    "TEST_TASK_IDS",
    "Task",
    "TaskId",
    "build_episode",
    "facts_dict",
    "get_task",
    "reference_commands",
]
