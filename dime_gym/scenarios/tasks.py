"""The 14 DIME tasks: one record each in ``TASKS``, plus one small pure setup hook per task.

A hook receives a seeded ``numpy.random.Generator``, the task's params record and initial
state record (both already holding the healthy defaults) and the task options, writes the
task's fault into them as data (load profile, crash/zombie steps, leak rates, retry gain, ...) and returns the
episode *facts* (fault step, faulty node, ...) that fill the reference solution's command
templates. The core kernels never see a task id: only these values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np

from dime_gym.core.state import FIRST_WORKER, MAX_EPISODE_STEPS, N_NODES, N_WORKERS
from dime_gym.scenarios.trace import bundled_trace, load_trace_csv

TaskId = Literal[
    "traffic_spike",
    "node_failure",
    "cascading_failure",
    "flash_crowd",
    "level_5_alibaba_trace",
    "thundering_herd",
    "zombie_node",
    "memory_leak_slow_burn",
    "split_brain_io_bottleneck",
    "black_swan_az_failure",
    "retry_storm",
    "hot_shard_skew",
    "connection_pool_deadlock",
    "autoscaler_flapping_trap",
]

Hook = Callable[[np.random.Generator, np.ndarray, np.ndarray, dict], dict]


@dataclasses.dataclass(frozen=True)
class ReferenceStep:
    """Issue ``command`` (a template over the episode facts) at step ``facts[anchor] + offset``."""

    anchor: str
    offset: int
    command: str


@dataclasses.dataclass(frozen=True)
class Task:
    """One DIME task: its fault as data, what an SRE should do, and a scripted solution."""

    id: str
    mechanism: str
    task_hint: str
    episode_steps: int
    ideal_response: str
    reference_solution: tuple[ReferenceStep, ...]
    setup: Hook
    cloud_credits: float = 6.0
    options: tuple[str, ...] = ()


def _random_worker(rng: np.random.Generator) -> int:
    return int(rng.integers(FIRST_WORKER, N_NODES))


def _profile(p: np.ndarray) -> np.ndarray:
    return p["load_profile"]


def _traffic_spike(rng, p, s, options):
    start = int(rng.integers(10, 37))
    length = int(rng.integers(6, 10))
    height = float(rng.uniform(2.6, 3.0))
    _profile(p)[start : start + length] = height
    p["replica_ttl_steps"] = 12
    return {"fault_step": start, "spike_end": start + length}


def _node_failure(rng, p, s, options):
    node = _random_worker(rng)
    step = int(rng.integers(3, 21))
    _profile(p)[:] = 1.75
    p["replica_ttl_steps"] = 10  # a stop-gap, not a fix
    p["crash_step"][node] = step
    p["crash_loops"][node] = 1
    return {"fault_step": step, "fault_node": node}


def _cascading_failure(rng, p, s, options):
    hot = rng.choice(np.arange(FIRST_WORKER, N_NODES), size=2, replace=False)
    hot_nodes = set(hot.tolist())  # (``n not in`` an array compares elementwise: slow)
    cool = [n for n in range(FIRST_WORKER, N_NODES) if n not in hot_nodes]
    ramp_start = int(rng.integers(5, 21))
    prof = _profile(p)
    prof[:] = 1.2
    prof[ramp_start : ramp_start + 8] = np.linspace(1.2, 1.9, 8)
    prof[ramp_start + 8 :] = 1.9
    s["route_weight"][hot] = 2.5
    return {"start": 0, "fault_step": ramp_start, "hot_a": int(hot[0]), "hot_b": int(hot[1]), "cool_a": cool[0], "cool_b": cool[-1]}


def _flash_crowd(rng, p, s, options):
    start = int(rng.integers(4, 21))
    peak = float(rng.uniform(3.5, 4.5))
    hold = int(rng.integers(6, 10))
    prof = _profile(p)
    ramp = np.linspace(1.0, peak, 7)[1:]
    prof[start : start + len(ramp)] = ramp
    prof[start + len(ramp) : start + len(ramp) + hold] = peak
    end = start + len(ramp) + hold
    prof[end : end + 4] = np.linspace(peak, 1.0, 6)[1:5]
    bursts = np.exp(rng.normal(0.0, 0.2, MAX_EPISODE_STEPS))
    prof[start:end] *= bursts[start:end]
    return {"fault_step": start, "flash_end": end}


def _trace(rng, p, s, options):
    trace_path = options.get("trace_path")
    load = load_trace_csv(trace_path, float(p["base_rate_rps"])) if trace_path else bundled_trace()
    steps = int(p["episode_steps"])
    if len(load) < steps:
        raise ValueError(f"trace has {len(load)} steps; task needs at least {steps}")
    offset = int(rng.integers(0, len(load) - steps + 1))
    _profile(p)[:steps] = load[offset : offset + steps]
    hot = load[offset : offset + steps] > 1.7
    first = int(np.argmax(hot)) if hot.any() else steps
    end = first
    while end < steps and hot[end]:  # the first burst only: release right after it
        end += 1
    return {"fault_step": first, "burst_start": max(first, 1), "burst_end": end, "trace_offset": offset}


def _thundering_herd(rng, p, s, options):
    recovery = int(rng.integers(15, 41))
    prof = _profile(p)
    prof[:recovery] = 0.15  # upstream outage: clients wait and pile up
    surge = float(rng.uniform(4.0, 5.0))
    decay = surge * np.array([1.0, 0.7, 0.45, 0.3])
    prof[recovery : recovery + 4] = np.maximum(decay, 1.0)
    return {"fault_step": recovery}


def _zombie_node(rng, p, s, options):
    node = _random_worker(rng)
    step = int(rng.integers(3, 8))
    p["zombie_step"][node] = step
    return {"fault_step": step, "fault_node": node}


def _memory_leak(rng, p, s, options):
    node = _random_worker(rng)
    leak = float(rng.uniform(0.03, 0.04))
    onset = int(rng.integers(0, 11))
    p["mem_leak_per_step"][node] = leak
    p["mem_leak_start_step"] = onset
    _profile(p)[:] = 1.75
    p["replica_ttl_steps"] = 10  # a stop-gap, not a fix
    restart_at = onset + int((0.8 - 0.45) / leak)  # restart once the leak nears 0.8, before GC pauses
    return {"fault_step": onset, "fault_node": node, "restart_step": restart_at, "restart_again": 2 * restart_at - onset + 2}


def _split_brain(rng, p, s, options):
    node = _random_worker(rng)
    step = int(rng.integers(3, 16))
    p["split_brain_step"][node] = step
    p["replication_io"] = float(rng.uniform(0.55, 0.6))
    p["replica_io_penalty"] = 0.1
    return {"fault_step": step, "fault_node": node}


def _black_swan(rng, p, s, options):
    step = int(rng.integers(10, 36))
    first = _random_worker(rng)
    zone = tuple(FIRST_WORKER + (first - FIRST_WORKER + k) % N_WORKERS for k in range(4))  # 4 ring neighbours
    for node in zone:
        p["crash_step"][node] = step
    facts = {"fault_step": step}
    facts.update({f"az_{k}": node for k, node in enumerate(zone)})
    return facts


def _retry_storm(rng, p, s, options):
    step = int(rng.integers(3, 19))
    p["retry_gain"] = float(rng.uniform(1.6, 1.9))
    p["db_slowdown_start_step"] = step
    p["db_slowdown_steps"] = 3
    p["db_slowdown_factor"] = 0.25
    _profile(p)[:] = 1.15
    return {"fault_step": step}


def _hot_shard(rng, p, s, options):
    node = _random_worker(rng)
    others = [n for n in range(FIRST_WORKER, N_NODES) if n != node]
    cool = rng.permutation(others)
    s["route_weight"][node] = 5.0
    return {"fault_step": 0, "fault_node": node, **{f"cool_{k}": int(n) for k, n in zip("abcde", cool)}}


def _pool_deadlock(rng, p, s, options):
    step = int(rng.integers(3, 9))
    p["pool_leak_start_step"] = step
    p["pool_leak_per_step"] = float(rng.uniform(0.045, 0.06))
    return {"fault_step": step}


def _autoscaler_trap(rng, p, s, options):
    period = int(rng.integers(12, 16))
    phase = float(rng.uniform(0, 2 * np.pi))
    storm_start = int(rng.integers(5, 21))
    storm_end = storm_start + int(rng.integers(18, 25))
    t = np.arange(MAX_EPISODE_STEPS)
    amplitude = np.where((t >= storm_start) & (t < storm_end), 1.8, 0.35)
    _profile(p)[:] = np.maximum(0.3, 1.35 + amplitude * np.sin(2 * np.pi * t / period + phase))
    p["replica_cold_steps"] = 3
    p["replica_ttl_steps"] = 5
    return {"fault_step": storm_start, "storm_end": storm_end, "period": period}


def _R(anchor: str, offset: int, command: str) -> ReferenceStep:
    return ReferenceStep(anchor, offset, command)


_SCALE = "kubectl scale deployment frontend --replicas=1"
_RELEASE = "kubectl throttle ingress --rate=1.00"

TASKS: tuple[Task, ...] = (
    Task(
        id="traffic_spike",
        mechanism="at a random step (10-36) offered load jumps to 2.6-3x the base rate for 6-9 steps, beyond worker and DB capacity; replicas live 12 steps",
        task_hint="System is under heavy traffic load.",
        episode_steps=50,
        ideal_response="add replicas early and shed a little load until they are warm; release the throttle when the spike ends",
        reference_solution=(
            _R("fault_step", 0, "kubectl throttle ingress --rate=0.80"),
            _R("fault_step", 1, _SCALE),
            _R("fault_step", 2, _SCALE),
            _R("spike_end", 0, _RELEASE),
        ),
        setup=_traffic_spike,
    ),
    Task(
        id="node_failure",
        mechanism="under 1.75x load one random worker's host dies at a random step (3-20): its pod crash-loops until deleted (rescheduled), and its ring neighbours absorb its share, saturate and cascade",
        task_hint="A worker node may crash; watch failed_nodes.",
        episode_steps=40,
        ideal_response="restart the crashed worker at once; scale up if the survivors saturate meanwhile",
        reference_solution=(_R("fault_step", 1, "kubectl delete pod node-{fault_node}"),),
        setup=_node_failure,
    ),
    Task(
        id="cascading_failure",
        mechanism="two random workers carry 2.5x routing weight; from a random step (5-20) load ramps from 1.2x to 1.9x: the hot pair saturates first and, when one dies, its share overloads its neighbours",
        task_hint="Two workers are running near saturation.",
        episode_steps=50,
        ideal_response="reroute traffic away from the two hot workers before they die, add capacity when the ramp starts, restart any worker that dies",
        reference_solution=(
            _R("start", 0, "kubectl reroute traffic --from=node-{hot_a} --to=node-{cool_a}"),
            _R("start", 1, "kubectl reroute traffic --from=node-{hot_b} --to=node-{cool_b}"),
            _R("fault_step", 0, _SCALE),
            _R("fault_step", 1, _SCALE),
            _R("fault_step", 2, _SCALE),
            _R("fault_step", 20, _SCALE),
            _R("fault_step", 21, _SCALE),
        ),
        setup=_cascading_failure,
    ),
    Task(
        id="flash_crowd",
        mechanism="from a random step (4-20) a bursty ramp to 3.5-4.5x the base rate, held for 6-9 steps, with only 2 cloud credits",
        task_hint="A flash crowd is arriving; cloud budget is tight.",
        episode_steps=40,
        ideal_response="throttle to what the cluster can serve, spend the two credits early, release after the crowd",
        reference_solution=(
            _R("fault_step", 1, "kubectl throttle ingress --rate=0.60"),
            _R("fault_step", 2, _SCALE),
            _R("fault_step", 3, "kubectl throttle ingress --rate=0.45"),
            _R("fault_step", 4, _SCALE),
            _R("flash_end", 0, "kubectl throttle ingress --rate=0.70"),
            _R("flash_end", 3, _RELEASE),
        ),
        setup=_flash_crowd,
        cloud_credits=2.0,
    ),
    Task(
        id="level_5_alibaba_trace",
        mechanism="load replays a 60-step window (offset by seed) of a synthetic diurnal trace with short bursts (bundled, or your own via trace_path=)",
        task_hint="Production traffic replay; mostly healthy, with bursts.",
        episode_steps=60,
        ideal_response="stay calm; shed a little load only during bursts and release right after",
        reference_solution=(
            _R("burst_start", -1, "kubectl throttle ingress --rate=0.80"),
            _R("burst_end", 0, _RELEASE),
        ),
        setup=_trace,
        options=("trace_path",),
    ),
    Task(
        id="thundering_herd",
        mechanism="after an upstream outage (0.15x load until a random step, 15-40) every client reconnects at once: a one-time 4-5x surge decaying over 4 steps",
        task_hint="An upstream dependency is recovering; clients will reconnect.",
        episode_steps=60,
        ideal_response="throttle hard for the first surge steps, then release in stages",
        reference_solution=(
            _R("fault_step", 0, "kubectl throttle ingress --rate=0.40"),
            _R("fault_step", 1, "kubectl throttle ingress --rate=0.55"),
            _R("fault_step", 2, "kubectl throttle ingress --rate=0.80"),
            _R("fault_step", 4, _RELEASE),
        ),
        setup=_thundering_herd,
    ),
    Task(
        id="zombie_node",
        mechanism="one worker keeps accepting its share but never answers: requests time out, CPU looks idle, p99 soars",
        task_hint="Latency is high but no node has failed.",
        episode_steps=40,
        ideal_response="find the idle worker with logs or CPU and restart it (or route traffic away from it)",
        reference_solution=(_R("fault_step", 1, "kubectl delete pod node-{fault_node}"),),
        setup=_zombie_node,
    ),
    Task(
        id="memory_leak_slow_burn",
        mechanism="under 1.75x load one random worker leaks 3-4 % memory per step from a random step (0-10) that GC never reclaims: GC pauses stall it from 0.85, it OOMs, its share overloads its ring neighbours, and after kubelet restarts it it leaks again",
        task_hint="Memory on one worker keeps growing.",
        episode_steps=60,
        ideal_response="restart the leaking worker before it reaches the OOM line (a restart reclaims leaked memory)",
        reference_solution=(
            _R("restart_step", 0, "kubectl delete pod node-{fault_node}"),
            _R("restart_again", 0, "kubectl delete pod node-{fault_node}"),
        ),
        setup=_memory_leak,
    ),
    Task(
        id="split_brain_io_bottleneck",
        mechanism="from a random step (3-15) one random worker writes to a diverged primary (split brain): its CPU runs high, every answer it gives is wrong (failed), and, in proportion to the traffic it takes, replication conflicts push DB io_wait above 0.8 and cut DB capacity to about the base load; replicas make it worse",
        task_hint="Database io_wait is abnormally high.",
        episode_steps=40,
        ideal_response="find the split worker (high CPU, its logs) and restart it or route traffic away from it; shed load only until it is fenced, and never scale up",
        reference_solution=(_R("fault_step", 1, "kubectl delete pod node-{fault_node}"),),
        setup=_split_brain,
    ),
    Task(
        id="black_swan_az_failure",
        mechanism="at a random step (10-35) a whole availability zone (four neighbouring workers on the ring) fails at once; the three survivors cannot carry the load until kubelet restarts the zone 12 steps later",
        task_hint="Several nodes may fail at the same time.",
        episode_steps=60,
        ideal_response="shed load to protect the survivors, restart the failed zone node by node, then release",
        reference_solution=(
            _R("fault_step", 0, "kubectl throttle ingress --rate=0.75"),
            _R("fault_step", 1, "kubectl delete pod node-{az_0}"),
            _R("fault_step", 2, "kubectl delete pod node-{az_1}"),
            _R("fault_step", 3, "kubectl delete pod node-{az_2}"),
            _R("fault_step", 4, "kubectl delete pod node-{az_3}"),
            _R("fault_step", 7, _RELEASE),
        ),
        setup=_black_swan,
    ),
    Task(
        id="retry_storm",
        mechanism="at a random step (3-18) a 3-step DB slowdown causes timeouts; clients retry every failure, so load grows with latency (a feedback loop)",
        task_hint="Clients retry failed requests aggressively.",
        episode_steps=40,
        ideal_response="throttle hard to break the loop, then release in stages once retries have drained",
        reference_solution=(
            _R("fault_step", 1, "kubectl throttle ingress --rate=0.40"),
            _R("fault_step", 4, "kubectl throttle ingress --rate=0.70"),
            _R("fault_step", 6, _RELEASE),
        ),
        setup=_retry_storm,
    ),
    Task(
        id="hot_shard_skew",
        mechanism="one worker's routing weight is 5x the others', so it saturates while the rest idle",
        task_hint="Traffic is unevenly distributed across workers.",
        episode_steps=40,
        ideal_response="reroute from the hot worker to several cool ones",
        reference_solution=(
            _R("fault_step", 0, "kubectl reroute traffic --from=node-{fault_node} --to=node-{cool_a}"),
            _R("fault_step", 1, "kubectl reroute traffic --from=node-{fault_node} --to=node-{cool_b}"),
            _R("fault_step", 2, "kubectl reroute traffic --from=node-{fault_node} --to=node-{cool_c}"),
            _R("fault_step", 3, "kubectl reroute traffic --from=node-{cool_a} --to=node-{cool_d}"),
            _R("fault_step", 4, "kubectl reroute traffic --from=node-{cool_b} --to=node-{cool_e}"),
        ),
        setup=_hot_shard,
    ),
    Task(
        id="connection_pool_deadlock",
        mechanism="the DB connection pool leaks 4.5-6 % per step from an early step; DB capacity shrinks until it hangs, while workers idle",
        task_hint="Database connections are not being released.",
        episode_steps=50,
        ideal_response="restart the database as soon as the pool leak shows (rising p99 with idle workers); a restart clears it",
        reference_solution=(_R("fault_step", 3, "kubectl delete pod node-0"),),
        setup=_pool_deadlock,
    ),
    Task(
        id="autoscaler_flapping_trap",
        mechanism="from a random step (5-20), for 18-24 steps, load storms between 0.3x and 3.15x (period 12-15 steps) between calm phases of 1-1.7x; replicas boot for 3 steps and live 5, so scaling on peaks lands in troughs",
        task_hint="Load is oscillating; beware of reactive scaling.",
        episode_steps=50,
        ideal_response="throttle through the storm and release as soon as it passes (a throttle held through the calm phases costs more than it saves); never chase peaks with replicas",
        reference_solution=(_R("fault_step", 0, "kubectl throttle ingress --rate=0.70"), _R("storm_end", 0, _RELEASE)),
        setup=_autoscaler_trap,
    ),
)


def _healthy(rng, p, s, options):
    return {"start": 0}


# Scenarios for tests only: ``get_task`` and ``build_episode`` (so the envs and snapshots)
# accept them, but they are not benchmark tasks (not in ``TASKS``, ``TASK_IDS``, ``"all"`` or
# the registered ids).
TEST_TASKS: tuple[Task, ...] = (
    Task(
        id="healthy",
        mechanism="no fault: the design point at base load, with only arrival noise and telemetry dropout",
        task_hint="The cluster is healthy.",
        episode_steps=40,
        ideal_response="do nothing",
        reference_solution=(),
        setup=_healthy,
    ),
)
