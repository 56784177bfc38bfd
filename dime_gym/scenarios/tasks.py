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

from dime_gym.core.state import FIRST_WORKER, MAX_EPISODE_STEPS, N_NODES
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
    start = int(rng.integers(3, 7))
    length = int(rng.integers(14, 19))
    height = float(rng.uniform(2.5, 2.8))
    _profile(p)[start : start + length] = height
    return {"fault_step": start, "spike_end": start + length}


def _node_failure(rng, p, s, options):
    node = _random_worker(rng)
    step = int(rng.integers(3, 8))
    _profile(p)[:] = 1.45
    p["crash_step"][node] = step
    p["crash_loops"][node] = 1
    return {"fault_step": step, "fault_node": node}


def _cascading_failure(rng, p, s, options):
    hot = rng.choice(np.arange(FIRST_WORKER, N_NODES), size=2, replace=False)
    hot_nodes = set(hot.tolist())  # (``n not in`` an array compares elementwise: slow)
    cool = [n for n in range(FIRST_WORKER, N_NODES) if n not in hot_nodes]
    steps = int(p["episode_steps"])
    _profile(p)[:] = 1.75
    _profile(p)[:steps] = np.linspace(1.25, 1.75, steps)
    s["route_weight"][hot] = 2.0
    return {"fault_step": 0, "hot_a": int(hot[0]), "hot_b": int(hot[1]), "cool_a": cool[0], "cool_b": cool[-1]}


def _flash_crowd(rng, p, s, options):
    start = int(rng.integers(3, 7))
    peak = float(rng.uniform(4.0, 5.0))
    hold = int(rng.integers(12, 17))
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
    recovery = int(rng.integers(4, 9))
    prof = _profile(p)
    prof[:recovery] = 0.15  # upstream outage: clients wait and pile up
    surge = float(rng.uniform(4.5, 5.5))
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
    leak = float(rng.uniform(0.025, 0.03))
    p["mem_leak_per_step"][node] = leak
    _profile(p)[:] = 1.4
    restart_at = int((0.8 - 0.45) / leak)  # restart once the leak nears 0.8, before GC pauses
    return {"fault_step": 0, "fault_node": node, "restart_step": restart_at, "restart_again": 2 * restart_at + 2}


def _split_brain(rng, p, s, options):
    p["replication_io"] = float(rng.uniform(0.6, 0.66))
    p["replica_io_penalty"] = 0.1
    return {"fault_step": 0}


def _black_swan(rng, p, s, options):
    step = int(rng.integers(3, 7))
    zone = (1, 2, 3, 4) if rng.random() < 0.5 else (4, 5, 6, 7)
    for node in zone:
        p["crash_step"][node] = step
    facts = {"fault_step": step}
    facts.update({f"az_{k}": node for k, node in enumerate(zone)})
    return facts


def _retry_storm(rng, p, s, options):
    step = int(rng.integers(3, 7))
    p["retry_gain"] = float(rng.uniform(1.6, 1.9))
    p["db_slowdown_start_step"] = step
    p["db_slowdown_steps"] = 2
    p["db_slowdown_factor"] = 0.3
    _profile(p)[:] = 1.15
    return {"fault_step": step}


def _hot_shard(rng, p, s, options):
    node = _random_worker(rng)
    others = [n for n in range(FIRST_WORKER, N_NODES) if n != node]
    cool = rng.permutation(others)
    s["route_weight"][node] = 5.0
    return {"fault_step": 0, "fault_node": node, "cool_a": int(cool[0]), "cool_b": int(cool[1]), "cool_c": int(cool[2])}


def _pool_deadlock(rng, p, s, options):
    step = int(rng.integers(3, 9))
    p["pool_leak_start_step"] = step
    p["pool_leak_per_step"] = float(rng.uniform(0.045, 0.06))
    return {"fault_step": step}


def _autoscaler_trap(rng, p, s, options):
    period = int(rng.integers(9, 12))
    phase = float(rng.uniform(0, 2 * np.pi))
    t = np.arange(MAX_EPISODE_STEPS)
    _profile(p)[:] = 1.5 + 0.95 * np.sin(2 * np.pi * t / period + phase)
    p["replica_cold_steps"] = 3
    p["replica_ttl_steps"] = 5
    return {"fault_step": 0, "period": period}


def _R(anchor: str, offset: int, command: str) -> ReferenceStep:
    return ReferenceStep(anchor, offset, command)


_SCALE = "kubectl scale deployment frontend --replicas=1"
_RELEASE = "kubectl throttle ingress --rate=1.00"

TASKS: tuple[Task, ...] = (
    Task(
        id="traffic_spike",
        mechanism="offered load jumps to 2.5-2.8x the base rate for 14-18 steps, beyond worker and DB capacity",
        task_hint="System is under heavy traffic load.",
        episode_steps=40,
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
        mechanism="one worker's host dies at an early step under 1.45x load: its pod crash-loops until deleted (rescheduled), and its ring neighbours absorb its share and run hot",
        task_hint="A worker node may crash; watch failed_nodes.",
        episode_steps=40,
        ideal_response="restart the crashed worker at once; scale up if the survivors saturate meanwhile",
        reference_solution=(_R("fault_step", 0, "kubectl delete pod node-{fault_node}"),),
        setup=_node_failure,
    ),
    Task(
        id="cascading_failure",
        mechanism="two workers carry double routing weight under a load ramp; when one saturates and dies its share overloads its neighbours",
        task_hint="Two workers are running near saturation.",
        episode_steps=50,
        ideal_response="reroute traffic away from the two hot workers before they die, then add capacity for the ramp",
        reference_solution=(
            _R("fault_step", 0, "kubectl reroute traffic --from=node-{hot_a} --to=node-{cool_a}"),
            _R("fault_step", 1, "kubectl reroute traffic --from=node-{hot_b} --to=node-{cool_b}"),
            _R("fault_step", 10, _SCALE),
            _R("fault_step", 25, _SCALE),
        ),
        setup=_cascading_failure,
    ),
    Task(
        id="flash_crowd",
        mechanism="a bursty ramp to 4-5x the base rate, held for 12-16 steps, with only 2 cloud credits",
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
        mechanism="load replays a 60-step window of a diurnal production-like trace with short bursts (bundled or trace_path=)",
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
        mechanism="after an upstream outage every client reconnects at once: a one-time 4.5-5.5x surge decaying over 4 steps",
        task_hint="An upstream dependency is recovering; clients will reconnect.",
        episode_steps=40,
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
        reference_solution=(_R("fault_step", 0, "kubectl delete pod node-{fault_node}"),),
        setup=_zombie_node,
    ),
    Task(
        id="memory_leak_slow_burn",
        mechanism="under 1.4x load one worker leaks 2.5-3 % memory per step that GC never reclaims: GC pauses stall it from 0.85, it OOMs near step 20, and again after kubelet restarts it",
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
        mechanism="replication conflicts push DB io_wait above 0.8 and cut its capacity below the base load; replicas make it worse",
        task_hint="Database io_wait is abnormally high.",
        episode_steps=40,
        ideal_response="shed load to what the DB can serve (about half) and never scale up",
        reference_solution=(_R("fault_step", 0, "kubectl throttle ingress --rate=0.75"),),
        setup=_split_brain,
    ),
    Task(
        id="black_swan_az_failure",
        mechanism="a whole availability zone (four workers) fails at once; the three survivors cannot carry the load",
        task_hint="Several nodes may fail at the same time.",
        episode_steps=40,
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
        mechanism="a brief DB slowdown causes timeouts; clients retry every failure, so load grows with latency (a feedback loop)",
        task_hint="Clients retry failed requests aggressively.",
        episode_steps=40,
        ideal_response="throttle hard to break the loop, then release in stages once retries have drained",
        reference_solution=(
            _R("fault_step", 1, "kubectl throttle ingress --rate=0.40"),
            _R("fault_step", 3, "kubectl throttle ingress --rate=0.70"),
            _R("fault_step", 5, _RELEASE),
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
        mechanism="load oscillates between 0.55x and 2.45x with a 9-11 step period; replicas boot for 3 steps and live 5, so scaling on peaks lands in troughs",
        task_hint="Load is oscillating; beware of reactive scaling.",
        episode_steps=50,
        ideal_response="hold a steady moderate throttle through the peaks instead of chasing them with replicas",
        reference_solution=(_R("fault_step", 0, "kubectl throttle ingress --rate=0.85"),),
        setup=_autoscaler_trap,
    ),
)
