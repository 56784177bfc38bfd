"""The agent's observation of one cluster, written by a kernel into preallocated arrays.

The Dict observation (``dime_gym.observation``) is fourteen small arrays; building them with
NumPy costs far more than a physics step, so the environments let this kernel fill four
buffers and hand out views of them. Row order of each buffer:

* ``node_obs`` (3, N_NODES) float32: cpu, mem, queue (rounded) per node; 0 for a down node
  (failed or restarting), -1 where telemetry dropped;
* ``flag_obs`` (2, N_NODES) int8: failed, restarting;
* ``scalar_obs`` (N_SCALAR_OBS,) float32: mean latency ms, p99 ms, offered rps, DB io_wait,
  error budget, cloud credits, throttle rate, active replicas;
* ``step_obs`` (1,) int64: completed steps.

``dime_gym.observation.build_observation`` is the readable NumPy twin; tests keep the two equal.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core._jit import kernel
from dime_gym.core.state import MAX_REPLICAS, N_NODES

N_NODE_OBS = 3
N_FLAG_OBS = 2
N_SCALAR_OBS = 8
DROPPED_VALUE = -1.0


@kernel
def write_observation(s, node_obs, flag_obs, scalar_obs, step_obs):
    """Write the observation of ``STATE_DTYPE`` record ``s`` into the four buffers (layout in
    the module docstring); any memory layout of the buffers is accepted."""
    for i in range(N_NODES):
        failed = s.failed[i] == 1
        restarting = s.restart_left[i] > 0
        if failed or restarting:
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
