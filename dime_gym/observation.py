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
