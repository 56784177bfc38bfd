"""The 14 DIME tasks as data: the task table, episode construction, graders, reference solutions.

``build_episode(task_id, seed)`` turns a task record and a seed into the ``(params, state)``
records the core kernels step, plus the episode facts (fault step, faulty node, ...).
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from dime_gym.core._jit import kernel
from dime_gym.core.params import (
    CPU_BACKGROUND,
    UTIL_CEILING,
    WORKER_SERVICE_MS,
    MEM_BASELINE,
    MEM_DB_BASELINE,
    default_params,
    record_from_bytes,
    validate_params,
)
from dime_gym.core.latency import db_io_wait, db_response_ms
from dime_gym.core.rng import seed_streams
from dime_gym.core.state import (
    DB,
    ERROR_BUDGET_MAX,
    FIRST_WORKER,
    N_NODES,
    STATE_DTYPE,
)
from dime_gym.scenarios.seeding import episode_generator
from dime_gym.scenarios.tasks import TASKS, TEST_TASKS, ReferenceStep, Task, TaskId


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


@dataclasses.dataclass(frozen=True)
class Episode:
    """Everything needed to step one episode: the records and what the scenario decided."""

    task: Task
    params: np.ndarray  # PARAMS_DTYPE scalar record
    state: np.ndarray  # STATE_DTYPE scalar record
    facts: dict


def _build_healthy_state_template() -> np.ndarray:
    s = np.zeros((), dtype=STATE_DTYPE)
    s["route_weight"][FIRST_WORKER:] = 1.0
    s["throttle_rate"] = 1.0
    s["error_budget"] = ERROR_BUDGET_MAX
    s["db_pool_free"] = 1.0
    s["mem"][DB] = MEM_DB_BASELINE + 0.1
    s["mem"][FIRST_WORKER:] = MEM_BASELINE + 0.15
    return s


_HEALTHY_STATE_BYTES = _build_healthy_state_template().tobytes()


def healthy_state(p: np.ndarray, seed: int) -> np.ndarray:
    """A ``STATE_DTYPE`` record at the healthy design point, RNG streams seeded from ``seed``."""
    s = record_from_bytes(_HEALTHY_STATE_BYTES, STATE_DTYPE)
    s["rng"] = seed_streams(seed)
    s["cloud_credits"] = p["initial_cloud_credits"]
    return s


_LOG_100 = float(np.log(100.0))  # p99 / mean of an exponential


@kernel
def _settle_observables_kernel(params, states):
    """Fill the reset observation's CPU, rate and latency of ``states[0]`` from the step-0
    load of ``params[0]`` (no queues): what the cluster shows before the first step."""
    p = params[0]
    s = states[0]
    offered = p.base_rate_rps * p.load_profile[0]
    weight_sum = 0.0
    for i in range(FIRST_WORKER, N_NODES):
        weight_sum += s.route_weight[i]
    rho_max = -np.inf
    for i in range(FIRST_WORKER, N_NODES):
        rho = min(1.0, offered * s.route_weight[i] / weight_sum / p.worker_capacity_rps)
        rho_max = max(rho_max, rho)
        s.cpu[i] = CPU_BACKGROUND + (1 - CPU_BACKGROUND) * rho
    db_util = min(1.0, offered / p.db_capacity_rps)  # (no split brain before the first step)
    s.cpu[DB] = CPU_BACKGROUND + (1 - CPU_BACKGROUND) * db_util
    s.db_util = db_util
    s.io_wait = db_io_wait(db_util, 0.0)
    s.offered_rps = offered
    s.admitted_rps = offered
    mean_ms = WORKER_SERVICE_MS / (1 - min(rho_max, UTIL_CEILING)) + db_response_ms(db_util, s.io_wait)
    s.latency_mean_ms = mean_ms
    s.latency_p99_ms = mean_ms * _LOG_100



def _settle_observables(p: np.ndarray, s: np.ndarray) -> None:
    """Fill the reset observation of 0-d record ``s`` from the step-0 load of ``p``."""
    _settle_observables_kernel(p.reshape(1), s.reshape(1))


def build_episode(task_id: str, seed: int, **options) -> Episode:
    """Build the params, initial state and facts of one episode of ``task_id``.

    Args:
        task_id: one of ``TASK_IDS``.
        seed: any integer; the same seed gives the same episode.
        **options: task options (``trace_path`` for the trace task).

    Raises:
        ValueError: unknown task, unknown option, or an invalid trace file.
    """
    task = get_task(task_id)
    unknown = set(options) - set(task.options)
    if unknown:
        valid = ", ".join(task.options) or "none"
        raise ValueError(f"task {task_id!r} got unknown option(s) {sorted(unknown)}; valid options: {valid}")
    seed = int(seed)
    rng = episode_generator(seed)  # = default_rng(SeedSequence([seed mod 2**64, 0xD1E])), faster
    p = default_params()
    p["episode_steps"] = task.episode_steps
    p["initial_cloud_credits"] = task.cloud_credits
    s = healthy_state(p, seed)
    facts = task.setup(rng, p, s, options)
    validate_params(p)
    _settle_observables(p, s)
    return Episode(task=task, params=p, state=s, facts=facts)


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
    "TASK_IDS",
    "TEST_TASK_IDS",
    "Task",
    "TaskId",
    "build_episode",
    "get_task",
    "healthy_state",
    "reference_commands",
]
