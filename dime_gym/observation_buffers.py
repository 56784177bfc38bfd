"""Dict observations as views of the buffers that ``dime_gym.core.observe`` fills in one
compiled call: the fast path of the single and the batched env.

The same function serves both: for one cluster the buffers are (3, 8), (2, 8), (8, 1) and (1,)
and the values come out as (8,) and (1,) arrays; for a batch of N they carry an extra N axis
and the values come out as (N, 8) and (N, 1) arrays, each C-contiguous. Buffers are allocated
fresh for every call, so no two observations share memory.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core.observe import N_FLAG_OBS, N_NODE_OBS, N_SCALAR_OBS
from dime_gym.core.state import N_NODES
from dime_gym.observation import SCALAR_FIELDS

NODE_FIELDS = ("cpu_loads", "mem_utilizations", "queue_lengths")  # rows of node_obs
FLAG_FIELDS = ("failed_nodes", "restarting_nodes")  # rows of flag_obs
STEP_FIELD = "step"
# rows of scalar_obs, in core.observe's order
SCALAR_ROWS = ("latency_ms", "p99_latency", "request_rate", "io_wait", "error_budget", "cloud_budget",
               "throttle_rate", "active_replicas")
if SCALAR_ROWS != tuple(SCALAR_FIELDS):  # one order for the kernel and the observation module
    raise ImportError(f"observation scalar fields {SCALAR_FIELDS} differ from the kernel's rows {SCALAR_ROWS}")


def allocate_single_buffers() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh ``(node_obs, flag_obs, scalar_obs, step_obs)`` buffers for one cluster."""
    return (
        np.empty((N_NODE_OBS, N_NODES), dtype=np.float32),
        np.empty((N_FLAG_OBS, N_NODES), dtype=np.int8),
        np.empty((N_SCALAR_OBS, 1), dtype=np.float32),
        np.empty(1, dtype=np.int64),
    )


def observation_from_buffers(node_obs, flag_obs, scalar_obs, step_obs) -> dict[str, np.ndarray]:
    """The Dict observation (documented key order) as views of the four buffers."""
    cpu, mem, queue = node_obs
    failed, restarting = flag_obs
    latency, p99, rate, io_wait, error_budget, cloud_budget, throttle, replicas = scalar_obs
    return {
        "cpu_loads": cpu,
        "mem_utilizations": mem,
        "queue_lengths": queue,
        "failed_nodes": failed,
        "restarting_nodes": restarting,
        "latency_ms": latency,
        "p99_latency": p99,
        "request_rate": rate,
        "io_wait": io_wait,
        "error_budget": error_budget,
        "cloud_budget": cloud_budget,
        "throttle_rate": throttle,
        "active_replicas": replicas,
        "step": step_obs,
    }
