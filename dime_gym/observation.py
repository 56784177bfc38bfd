"""The agent's view of a cluster: the Dict observation space and its construction from state.

Telemetry dropout shows as -1 in ``cpu_loads``, ``mem_utilizations`` and ``queue_lengths``;
a failed or restarting node shows 0 there and is flagged in ``failed_nodes`` /
``restarting_nodes`` (node status is never subject to dropout).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

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

DROPPED = -1.0
SCALAR_FIELDS = (
    "latency_ms",
    "p99_latency",
    "request_rate",
    "io_wait",
    "error_budget",
    "cloud_budget",
    "throttle_rate",
    "active_replicas",
)


def _box(low: float, high: float, shape=(1,)) -> spaces.Box:
    return spaces.Box(low=np.float32(low), high=np.float32(high), shape=shape, dtype=np.float32)


def observation_space() -> spaces.Dict:
    """The Dict observation space of one cluster (key order is the documented order)."""
    return spaces.Dict(
        {
            "cpu_loads": _box(DROPPED, 1.0, (N_NODES,)),
            "mem_utilizations": _box(DROPPED, 1.0, (N_NODES,)),
            "queue_lengths": _box(DROPPED, QUEUE_CAPACITY, (N_NODES,)),
            "failed_nodes": spaces.MultiBinary(N_NODES),
            "restarting_nodes": spaces.MultiBinary(N_NODES),
            "latency_ms": _box(0.0, LATENCY_CAP_MS),
            "p99_latency": _box(0.0, LATENCY_CAP_MS),
            "request_rate": _box(0.0, MAX_REQUEST_RATE_RPS),
            "io_wait": _box(0.0, 1.0),
            "error_budget": _box(0.0, ERROR_BUDGET_MAX),
            "cloud_budget": _box(0.0, MAX_CLOUD_CREDITS),
            "throttle_rate": _box(0.0, 1.0),
            "active_replicas": _box(0.0, MAX_REPLICAS),
            "step": spaces.Box(low=0, high=MAX_EPISODE_STEPS, shape=(1,), dtype=np.int64),
        }
    )


def build_observation(s) -> dict[str, np.ndarray]:
    """Fresh observation arrays (never views of the state) for state record ``s``."""
    down = (s["failed"] == 1) | (s["restart_left"] > 0)
    hidden = (s["dropped"] == 1) & ~down

    def node_field(values: np.ndarray) -> np.ndarray:
        out = np.where(down, 0.0, values).astype(np.float32)
        out[hidden] = DROPPED
        return out

    return {
        "cpu_loads": node_field(s["cpu"]),
        "mem_utilizations": node_field(s["mem"]),
        "queue_lengths": node_field(np.round(s["queue"])),
        "failed_nodes": (s["failed"] == 1).astype(np.int8),
        "restarting_nodes": (s["restart_left"] > 0).astype(np.int8),
        "latency_ms": np.array([s["latency_mean_ms"]], dtype=np.float32),
        "p99_latency": np.array([s["latency_p99_ms"]], dtype=np.float32),
        "request_rate": np.array([s["offered_rps"]], dtype=np.float32),
        "io_wait": np.array([s["io_wait"]], dtype=np.float32),
        "error_budget": np.array([s["error_budget"]], dtype=np.float32),
        "cloud_budget": np.array([s["cloud_credits"]], dtype=np.float32),
        "throttle_rate": np.array([s["throttle_rate"]], dtype=np.float32),
        "active_replicas": np.array([np.count_nonzero(s["replica_ttl_left"])], dtype=np.float32),
        "step": np.array([s["step"]], dtype=np.int64),
    }


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
NODE_SET_FIELDS = ("failed_nodes", "restarting_nodes")


VECTOR_FIELDS = ("cpu_loads", "mem_utilizations", "queue_lengths")
# The documented key order (``spaces.Dict`` sorts its keys; prompts keep this order).
OBSERVATION_KEYS = (*VECTOR_FIELDS, *NODE_SET_FIELDS, *SCALAR_FIELDS, "step")


def display_value(key: str, value):
    """One numeric observation field at display precision, as plain Python: rounded to
    ``DISPLAY_DECIMALS[key]`` decimals (ints where that is 0); vectors as lists."""
    decimals = DISPLAY_DECIMALS[key]
    values = value.tolist() if isinstance(value, np.ndarray) else list(value) if isinstance(value, (list, tuple)) else [value]
    if decimals == 0:
        rounded = [int(round(float(x))) for x in values]
    else:
        rounded = [round(float(x), decimals) + 0.0 for x in values]  # + 0.0: no -0.0
    return rounded if key in VECTOR_FIELDS else rounded[0]


def display_observation(obs) -> dict:
    """The Dict observation as the plain values an agent is shown, in ``OBSERVATION_KEYS``
    order; node sets (``failed_nodes``, ``restarting_nodes``) become sorted index lists."""
    out = {}
    for key in OBSERVATION_KEYS:
        if key in NODE_SET_FIELDS:
            out[key] = np.flatnonzero(np.asarray(obs[key])).tolist()
        else:
            out[key] = display_value(key, obs[key])
    return out
