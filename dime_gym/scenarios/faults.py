"""Each task's fault as a small compiled hook: the scenario part of episode construction.

A hook ``hook(g, p, s, facts, trace_load)`` draws what it needs from the episode generator
``g`` (a ``(1,)`` uint64 splitmix64 state, ``core.rng``), writes the task's fault into the
params record ``p`` and the initial state ``s`` (both holding the healthy defaults) as data
(load profile, crash/zombie steps, leak rates, retry gain, ...), and writes the episode *facts*
(fault step, faulty node, ...) into ``facts`` in the order of its task's ``fact_names``: they fill
the reference solution's command templates. ``trace_load`` is the replayed trace's per-step
load (read by the trace task only). The core kernels never see a task: only these values.

Hooks are compiled so that episodes start inside the batched kernels (``scenarios.episodes``),
with no Python per reset. ``SETUP_HOOKS`` is the dispatch table: a task's code is its hook's
index there, and ``run_setup_hook`` calls the hook of a code.
"""

from __future__ import annotations

import math

import numpy as np

from dime_gym.core._jit import kernel
from dime_gym.core.rng import next_normal, next_uniform
from dime_gym.core.state import FIRST_WORKER, MAX_EPISODE_STEPS, N_NODES, N_WORKERS

MAX_FACTS = 8  # facts one episode can carry (hot_shard_skew has the most: 7)
_EPISODE_STREAM = 0  # the episode generator is a one-stream state
TRACE_HOT_LOAD = 1.7  # the trace task's bursts: load above this multiple of the base rate
AZ_SIZE = 4  # workers in one availability zone (ring neighbours)
FLASH_RAMP_STEPS = 6  # steps of a flash crowd's rise to its peak
FLASH_FALL_STEPS = 4  # steps of its fall back to the base rate
FLASH_BURST_SIGMA = 0.2  # lognormal sigma of the crowd's step-to-step bursts
HERD_DECAY = (1.0, 0.7, 0.45, 0.3)  # the reconnect surge over its first steps, as a fraction of its peak
LEAK_RESTART_MEMORY = 0.8  # the reference restarts a leaking worker once it nears this memory
LEAK_BASELINE_MEMORY = 0.45  # a loaded worker's memory before the leak


# --- the episode generator ----------------------------------------------------------------------
@kernel
def draw_int(g, low, high):
    """An integer uniform in ``[low, high)``."""
    return low + int(next_uniform(g, _EPISODE_STREAM) * (high - low))


@kernel
def draw_uniform(g, low, high):
    """A float uniform in ``[low, high)``."""
    return low + (high - low) * next_uniform(g, _EPISODE_STREAM)


@kernel
def draw_worker(g):
    """A worker node index, uniform over the workers."""
    return draw_int(g, FIRST_WORKER, N_NODES)


# --- the hooks, one per task ----------------------------------------------------------------------
@kernel
def traffic_spike(g, p, s, facts, trace_load):
    start = draw_int(g, 10, 37)
    length = draw_int(g, 6, 10)
    height = draw_uniform(g, 2.6, 3.0)
    p.load_profile[start:start + length] = height
    p.replica_ttl_steps = 12
    facts[0], facts[1] = start, start + length  # fault_step, spike_end


@kernel
def node_failure(g, p, s, facts, trace_load):
    node = draw_worker(g)
    step = draw_int(g, 3, 21)
    p.load_profile[:] = 1.75
    p.replica_ttl_steps = 10  # a stop-gap, not a fix
    p.crash_step[node] = step
    p.crash_loops[node] = 1
    facts[0], facts[1] = step, node  # fault_step, fault_node


@kernel
def cascading_failure(g, p, s, facts, trace_load):
    hot_a = draw_worker(g)
    hot_b = draw_int(g, FIRST_WORKER, N_NODES - 1)  # a second worker, distinct from the first
    if hot_b >= hot_a:
        hot_b += 1
    cool_a, cool_b = -1, -1  # the lowest and highest numbered cool workers
    for node in range(FIRST_WORKER, N_NODES):
        if node != hot_a and node != hot_b:
            if cool_a < 0:
                cool_a = node
            cool_b = node
    ramp_start = draw_int(g, 5, 21)
    ramp = np.linspace(1.2, 1.9, 8)
    p.load_profile[:] = 1.2
    p.load_profile[ramp_start:ramp_start + 8] = ramp
    p.load_profile[ramp_start + 8:] = 1.9
    s.route_weight[hot_a] = 2.5
    s.route_weight[hot_b] = 2.5
    facts[0], facts[1], facts[2], facts[3], facts[4], facts[5] = 0, ramp_start, hot_a, hot_b, cool_a, cool_b


@kernel
def flash_crowd(g, p, s, facts, trace_load):
    start = draw_int(g, 4, 21)
    peak = draw_uniform(g, 3.5, 4.5)
    hold = draw_int(g, 6, 10)
    prof = p.load_profile
    prof[start:start + FLASH_RAMP_STEPS] = np.linspace(1.0, peak, FLASH_RAMP_STEPS + 1)[1:]
    end = start + FLASH_RAMP_STEPS + hold
    prof[start + FLASH_RAMP_STEPS:end] = peak
    prof[end:end + FLASH_FALL_STEPS] = np.linspace(peak, 1.0, FLASH_FALL_STEPS + 2)[1:FLASH_FALL_STEPS + 1]
    for t in range(start, end):
        prof[t] *= math.exp(FLASH_BURST_SIGMA * next_normal(g, _EPISODE_STREAM))
    facts[0], facts[1] = start, end  # fault_step, flash_end


@kernel
def trace_replay(g, p, s, facts, trace_load):
    steps = p.episode_steps
    offset = draw_int(g, 0, trace_load.shape[0] - steps + 1)
    first = steps  # the first burst only: release right after it
    for t in range(steps):
        p.load_profile[t] = trace_load[offset + t]
        if first == steps and trace_load[offset + t] > TRACE_HOT_LOAD:
            first = t
    end = first
    while end < steps and trace_load[offset + end] > TRACE_HOT_LOAD:
        end += 1
    facts[0], facts[1], facts[2], facts[3] = first, max(first, 1), end, offset  # fault_step, burst_start, burst_end, trace_offset


@kernel
def thundering_herd(g, p, s, facts, trace_load):
    recovery = draw_int(g, 15, 41)
    p.load_profile[:recovery] = 0.15  # upstream outage: clients wait and pile up
    surge = draw_uniform(g, 4.0, 5.0)
    for k in range(len(HERD_DECAY)):
        p.load_profile[recovery + k] = max(surge * HERD_DECAY[k], 1.0)
    facts[0] = recovery  # fault_step


@kernel
def zombie_node(g, p, s, facts, trace_load):
    node = draw_worker(g)
    step = draw_int(g, 3, 8)
    p.zombie_step[node] = step
    facts[0], facts[1] = step, node  # fault_step, fault_node


@kernel
def memory_leak(g, p, s, facts, trace_load):
    node = draw_worker(g)
    leak = draw_uniform(g, 0.03, 0.04)
    onset = draw_int(g, 0, 11)
    p.mem_leak_per_step[node] = leak
    p.mem_leak_start_step = onset
    p.load_profile[:] = 1.75
    p.replica_ttl_steps = 10  # a stop-gap, not a fix
    restart_at = onset + int((LEAK_RESTART_MEMORY - LEAK_BASELINE_MEMORY) / leak)  # before GC pauses bite
    facts[0], facts[1], facts[2], facts[3] = onset, node, restart_at, 2 * restart_at - onset + 2


@kernel
def split_brain(g, p, s, facts, trace_load):
    node = draw_worker(g)
    step = draw_int(g, 3, 16)
    p.split_brain_step[node] = step
    p.replication_io = draw_uniform(g, 0.55, 0.6)
    p.replica_io_penalty = 0.1
    facts[0], facts[1] = step, node  # fault_step, fault_node


@kernel
def black_swan(g, p, s, facts, trace_load):
    step = draw_int(g, 10, 36)
    first = draw_worker(g)
    facts[0] = step  # fault_step, then az_0 .. az_3
    for k in range(AZ_SIZE):
        node = FIRST_WORKER + (first - FIRST_WORKER + k) % N_WORKERS  # ring neighbours
        p.crash_step[node] = step
        facts[1 + k] = node


@kernel
def retry_storm(g, p, s, facts, trace_load):
    step = draw_int(g, 3, 19)
    p.retry_gain = draw_uniform(g, 1.6, 1.9)
    p.db_slowdown_start_step = step
    p.db_slowdown_steps = 3
    p.db_slowdown_factor = 0.25
    p.load_profile[:] = 1.15
    facts[0] = step  # fault_step


@kernel
def hot_shard(g, p, s, facts, trace_load):
    node = draw_worker(g)
    cool = np.empty(N_WORKERS - 1, dtype=np.int64)  # the other workers, shuffled (Fisher-Yates)
    k = 0
    for other in range(FIRST_WORKER, N_NODES):
        if other != node:
            cool[k] = other
            k += 1
    for i in range(len(cool) - 1, 0, -1):
        j = draw_int(g, 0, i + 1)
        cool[i], cool[j] = cool[j], cool[i]
    s.route_weight[node] = 5.0
    facts[0], facts[1] = 0, node  # fault_step, fault_node, then cool_a .. cool_e
    for i in range(5):
        facts[2 + i] = cool[i]


@kernel
def pool_deadlock(g, p, s, facts, trace_load):
    step = draw_int(g, 3, 9)
    p.pool_leak_start_step = step
    p.pool_leak_per_step = draw_uniform(g, 0.045, 0.06)
    facts[0] = step  # fault_step


@kernel
def autoscaler_trap(g, p, s, facts, trace_load):
    period = draw_int(g, 12, 16)
    phase = draw_uniform(g, 0.0, 2.0 * math.pi)
    storm_start = draw_int(g, 5, 21)
    storm_end = storm_start + draw_int(g, 18, 25)
    for t in range(MAX_EPISODE_STEPS):
        amplitude = 1.8 if storm_start <= t < storm_end else 0.35
        p.load_profile[t] = max(0.3, 1.35 + amplitude * math.sin(2.0 * math.pi * t / period + phase))
    p.replica_cold_steps = 3
    p.replica_ttl_steps = 5
    facts[0], facts[1], facts[2] = storm_start, storm_end, period  # fault_step, storm_end, period


@kernel
def healthy(g, p, s, facts, trace_load):
    facts[0] = 0  # start


SETUP_HOOKS = (traffic_spike, node_failure, cascading_failure, flash_crowd, trace_replay, thundering_herd,
               zombie_node, memory_leak, split_brain, black_swan, retry_storm, hot_shard, pool_deadlock,
               autoscaler_trap, healthy)


@kernel
def run_setup_hook(code, g, p, s, facts, trace_load):
    """Call ``SETUP_HOOKS[code]`` (a test checks this chain against the tuple)."""
    if code == 0:
        traffic_spike(g, p, s, facts, trace_load)
    elif code == 1:
        node_failure(g, p, s, facts, trace_load)
    elif code == 2:
        cascading_failure(g, p, s, facts, trace_load)
    elif code == 3:
        flash_crowd(g, p, s, facts, trace_load)
    elif code == 4:
        trace_replay(g, p, s, facts, trace_load)
    elif code == 5:
        thundering_herd(g, p, s, facts, trace_load)
    elif code == 6:
        zombie_node(g, p, s, facts, trace_load)
    elif code == 7:
        memory_leak(g, p, s, facts, trace_load)
    elif code == 8:
        split_brain(g, p, s, facts, trace_load)
    elif code == 9:
        black_swan(g, p, s, facts, trace_load)
    elif code == 10:
        retry_storm(g, p, s, facts, trace_load)
    elif code == 11:
        hot_shard(g, p, s, facts, trace_load)
    elif code == 12:
        pool_deadlock(g, p, s, facts, trace_load)
    elif code == 13:
        autoscaler_trap(g, p, s, facts, trace_load)
    else:
        healthy(g, p, s, facts, trace_load)
