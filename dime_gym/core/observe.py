"""The agent's observation of one cluster: its layout, and the kernel that writes it.

The Dict observation is fourteen small arrays; building them with NumPy costs far more than a
physics step, so the kernel fills four buffers and the environments hand out views of their
rows (``dime_gym.observation``). This module is the one statement of that layout: the field
names of each buffer's rows, in row order; the observation space, the Dict views and the
prompts all derive from it.

* ``node_obs`` (N_NODE_OBS, N_NODES) float32, rows ``NODE_FIELDS``: cpu, mem, queue (rounded)
  per node; 0 for a node that is not serving, ``DROPPED_VALUE`` where telemetry dropped;
* ``flag_obs`` (N_FLAG_OBS, N_NODES) int8, rows ``FLAG_FIELDS``: failed, restarting (0/1);
* ``scalar_obs`` (N_SCALAR_OBS,) float32, rows ``SCALAR_FIELDS``: mean latency ms, p99 ms,
  offered rps, DB io_wait, error budget, cloud credits, throttle rate, active replicas;
* ``step_obs`` (1,) int64, ``STEP_FIELD``: completed steps.

``tests/reference.py`` holds a readable NumPy twin of ``write_observation``; tests keep them equal.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core._jit import inlined_kernel, kernel
from dime_gym.core.nodes import is_serving
from dime_gym.core.state import MAX_REPLICAS, N_NODES

NODE_FIELDS = ("cpu_loads", "mem_utilizations", "queue_lengths")
FLAG_FIELDS = ("failed_nodes", "restarting_nodes")
SCALAR_FIELDS = ("latency_ms", "p99_latency", "request_rate", "io_wait", "error_budget", "cloud_budget",
                 "throttle_rate", "active_replicas")
STEP_FIELD = "step"
N_NODE_OBS = len(NODE_FIELDS)
N_FLAG_OBS = len(FLAG_FIELDS)
N_SCALAR_OBS = len(SCALAR_FIELDS)
DROPPED_VALUE = -1.0  # what a node field shows while the node's telemetry is dropped

# One observation of one cluster as one record: the four buffers side by side, so that the single
# env hands the compiled step one array instead of four (``dime_gym.observation.ObservationSlots``).
SLOT_DTYPE = np.dtype([
    ("node_obs", np.float32, (N_NODE_OBS, N_NODES)),
    ("flag_obs", np.int8, (N_FLAG_OBS, N_NODES)),
    ("scalar_obs", np.float32, (N_SCALAR_OBS, 1)),
    ("step_obs", np.int64, (1,)),
])


@inlined_kernel
def write_observation(s, node_obs, flag_obs, scalar_obs, step_obs):
    """Write the observation of ``STATE_DTYPE`` record ``s`` into the four buffers (rows in
    the order of ``NODE_FIELDS``, ``FLAG_FIELDS``, ``SCALAR_FIELDS``); any memory layout of the
    buffers is accepted."""
    for i in range(N_NODES):
        failed = s.failed[i] == 1
        restarting = s.restart_left[i] > 0
        if not is_serving(s, i):
            node_obs[0, i] = 0.0
            node_obs[1, i] = 0.0
            node_obs[2, i] = 0.0
        elif s.dropped[i] == 1:
            node_obs[0, i] = DROPPED_VALUE
            node_obs[1, i] = DROPPED_VALUE
            node_obs[2, i] = DROPPED_VALUE
        else:
            node_obs[0, i] = np.float32(s.cpu[i])
            node_obs[1, i] = np.float32(s.mem[i])
            node_obs[2, i] = np.float32(np.rint(s.queue[i]))
        flag_obs[0, i] = 1 if failed else 0
        flag_obs[1, i] = 1 if restarting else 0
    active_replicas = 0
    for r in range(MAX_REPLICAS):
        if s.replica_ttl_left[r] != 0:
            active_replicas += 1
    scalar_obs[0] = np.float32(s.latency_mean_ms)
    scalar_obs[1] = np.float32(s.latency_p99_ms)
    scalar_obs[2] = np.float32(s.offered_rps)
    scalar_obs[3] = np.float32(s.io_wait)
    scalar_obs[4] = np.float32(s.error_budget)
    scalar_obs[5] = np.float32(s.cloud_credits)
    scalar_obs[6] = np.float32(s.throttle_rate)
    scalar_obs[7] = np.float32(active_replicas)
    step_obs[0] = s.step
