"""The agent's view of a cluster: the Dict observation space and the observations themselves,
both derived from the one layout in ``dime_gym.core.observe``.

Telemetry dropout shows as ``DROPPED_VALUE`` (-1) in ``cpu_loads``, ``mem_utilizations`` and
``queue_lengths``; a failed or restarting node shows 0 there and is flagged in ``failed_nodes``
/ ``restarting_nodes`` (node status is never subject to dropout).

Observations are views of the buffers the ``write_observation`` kernel fills in one compiled
call: for one cluster the buffers are (3, 8), (2, 8), (8, 1) and (1,) and the values come out
as (8,) and (1,) arrays (the single env takes them from ``ObservationSlots``: one ``SLOT_DTYPE``
record holds the four buffers, records for many steps allocated at once); for a batch of N
they carry an extra N axis and the values come out as (N, 8) and (N, 1) arrays, each
C-contiguous. No buffer is written twice, so no two
observations share memory.
"""

from __future__ import annotations

from itertools import islice

import numpy as np
from gymnasium import spaces

from dime_gym.core.observe import (
    DROPPED_VALUE,
    FLAG_FIELDS,
    N_FLAG_OBS,
    N_NODE_OBS,
    N_SCALAR_OBS,
    NODE_FIELDS,
    SCALAR_FIELDS,
    SLOT_DTYPE,
    STEP_FIELD,
)
from dime_gym.core.state import (
    ERROR_BUDGET_MAX,
    LATENCY_CAP_MS,
    MAX_CLOUD_CREDITS,
    MAX_EPISODE_STEPS,
    MAX_REPLICAS,
    MAX_REQUEST_RATE_RPS,
    N_NODES,
    QUEUE_CAPACITY,
)

# The documented key order (``spaces.Dict`` sorts its keys; observations and prompts keep this one).
OBSERVATION_KEYS = (*NODE_FIELDS, *FLAG_FIELDS, *SCALAR_FIELDS, STEP_FIELD)

# (low, high) of every field that is not a 0/1 flag, in the field's unit
FIELD_BOUNDS = {
    "cpu_loads": (DROPPED_VALUE, 1.0),  # utilisation fraction
    "mem_utilizations": (DROPPED_VALUE, 1.0),  # memory fraction
    "queue_lengths": (DROPPED_VALUE, QUEUE_CAPACITY),  # requests
    "latency_ms": (0.0, LATENCY_CAP_MS),
    "p99_latency": (0.0, LATENCY_CAP_MS),  # ms
    "request_rate": (0.0, MAX_REQUEST_RATE_RPS),  # rps offered, retries included
    "io_wait": (0.0, 1.0),  # fraction
    "error_budget": (0.0, ERROR_BUDGET_MAX),  # tokens
    "cloud_budget": (0.0, MAX_CLOUD_CREDITS),  # credits
    "throttle_rate": (0.0, 1.0),  # admitted fraction
    "active_replicas": (0.0, MAX_REPLICAS),  # replicas
    "step": (0, MAX_EPISODE_STEPS),  # steps
}


def _box(key: str, shape: tuple[int, ...]) -> spaces.Box:
    low, high = FIELD_BOUNDS[key]
    return spaces.Box(low=np.float32(low), high=np.float32(high), shape=shape, dtype=np.float32)


def observation_space() -> spaces.Dict:
    """The Dict observation space of one cluster (key order is ``OBSERVATION_KEYS``)."""
    fields = {key: _box(key, (N_NODES,)) for key in NODE_FIELDS}
    fields.update({key: spaces.MultiBinary(N_NODES) for key in FLAG_FIELDS})
    fields.update({key: _box(key, (1,)) for key in SCALAR_FIELDS})
    low, high = FIELD_BOUNDS[STEP_FIELD]
    fields[STEP_FIELD] = spaces.Box(low=low, high=high, shape=(1,), dtype=np.int64)
    return spaces.Dict(fields)


def allocate_single_buffers() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh ``(node_obs, flag_obs, scalar_obs, step_obs)`` buffers for one cluster."""
    return (
        np.empty((N_NODE_OBS, N_NODES), dtype=np.float32),
        np.empty((N_FLAG_OBS, N_NODES), dtype=np.int8),
        np.empty((N_SCALAR_OBS, 1), dtype=np.float32),
        np.empty(1, dtype=np.int64),
    )


def _observation_dict(cpu_loads, mem_utilizations, queue_lengths, failed_nodes, restarting_nodes, latency_ms,
                      p99_latency, request_rate, io_wait, error_budget, cloud_budget, throttle_rate, active_replicas,
                      step) -> dict[str, np.ndarray]:
    """The Dict observation from its fourteen values (a literal builds it in about half the time
    of ``dict(zip(...))``; the check below keeps it in ``OBSERVATION_KEYS`` order)."""
    return {"cpu_loads": cpu_loads, "mem_utilizations": mem_utilizations, "queue_lengths": queue_lengths,
            "failed_nodes": failed_nodes, "restarting_nodes": restarting_nodes, "latency_ms": latency_ms,
            "p99_latency": p99_latency, "request_rate": request_rate, "io_wait": io_wait, "error_budget": error_budget,
            "cloud_budget": cloud_budget, "throttle_rate": throttle_rate, "active_replicas": active_replicas,
            "step": step}


if tuple(_observation_dict(*OBSERVATION_KEYS)) != OBSERVATION_KEYS:
    raise AssertionError("_observation_dict does not follow OBSERVATION_KEYS")


class ObservationSlots:
    """Records for the next ``slots`` observations of one cluster, allocated together, and the
    Dict observation of each slot, built ahead.

    Each slot is handed out once and never written again, so observations never share memory
    (``np.shares_memory`` is False between any two) and a kept observation never changes. A
    single env takes one slot per step: allocating buffers and making fourteen views and a
    dict per step cost more than the compiled step, while doing it for many slots at once (the
    views and the dicts are made by C loops: ``islice`` over a field, ``map`` over the columns)
    costs a fraction. A kept observation keeps its slots' records alive (``slots`` × 152 bytes).

    Attributes:
        records: (K,) ``SLOT_DTYPE``, the buffers (``core.observe`` layout in each record);
            ``record_bytes`` the same memory as uint8, as the compiled step takes it.
        observations: (K,) the Dict observation (``OBSERVATION_KEYS`` order) viewing each slot.
        taken: slots handed out so far.
    """

    def __init__(self, slots: int = 64):
        self.records = np.empty(slots, dtype=SLOT_DTYPE)
        self.record_bytes = self.records.view(np.uint8)
        # per key in OBSERVATION_KEYS order, the K views of that key; islice stops before the
        # end, since running a NumPy iteration to its end raises an IndexError (~1 us each)
        columns = []
        for field, n_rows in (("node_obs", N_NODE_OBS), ("flag_obs", N_FLAG_OBS), ("scalar_obs", N_SCALAR_OBS)):
            values = self.records[field]
            columns.extend(list(islice(values[:, row], slots)) for row in range(n_rows))
        columns.append(list(islice(self.records["step_obs"], slots)))
        self.observations = list(map(_observation_dict, *columns))
        self.taken = 0


def observation_from_buffers(node_obs, flag_obs, scalar_obs, step_obs) -> dict[str, np.ndarray]:
    """The Dict observation (``OBSERVATION_KEYS`` order) as views of the rows of the four buffers."""
    obs = dict(zip(NODE_FIELDS, node_obs))
    obs.update(zip(FLAG_FIELDS, flag_obs))
    obs.update(zip(SCALAR_FIELDS, scalar_obs))
    obs[STEP_FIELD] = step_obs
    return obs


# Decimals each field is shown with to an agent (the text prompt) and read with by the triage
# oracle, so that a model reading the prompt has exactly the information the oracle has.
DISPLAY_DECIMALS = {
    "cpu_loads": 2,
    "mem_utilizations": 2,
    "queue_lengths": 0,
    "latency_ms": 1,
    "p99_latency": 1,
    "request_rate": 1,
    "io_wait": 2,
    "error_budget": 1,
    "cloud_budget": 1,
    "throttle_rate": 2,
    "active_replicas": 0,
    "step": 0,
}


def display_value(key: str, value):
    """One numeric observation field at display precision, as plain Python: rounded to
    ``DISPLAY_DECIMALS[key]`` decimals (ints where that is 0); vectors as lists."""
    decimals = DISPLAY_DECIMALS[key]
    values = value.tolist() if isinstance(value, np.ndarray) else list(value) if isinstance(value, (list, tuple)) else [value]
    if decimals == 0:
        rounded = [int(round(float(x))) for x in values]
    else:
        rounded = [round(float(x), decimals) + 0.0 for x in values]  # + 0.0: no -0.0
    return rounded if key in NODE_FIELDS else rounded[0]


def display_observation(obs) -> dict:
    """The Dict observation as the plain values an agent is shown, in ``OBSERVATION_KEYS``
    order; node flags (``failed_nodes``, ``restarting_nodes``) become sorted index lists."""
    out = {}
    for key in OBSERVATION_KEYS:
        if key in FLAG_FIELDS:
            out[key] = np.flatnonzero(np.asarray(obs[key])).tolist()
        else:
            out[key] = display_value(key, obs[key])
    return out
