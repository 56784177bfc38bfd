"""The 14 DIME tasks: one record each in ``TASKS``, each with its fault's setup hook.

A task's ``setup`` is its compiled hook in ``scenarios.faults``: it writes the fault into the
params and initial state as data (load profile, crash/zombie steps, leak rates, retry gain, ...)
and the episode *facts* (named by ``fact_names``) that fill the reference solution's command
templates. The core kernels never see a task id: only these values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

from dime_gym.scenarios import faults

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

Hook = Callable  # a compiled ``hook(g, p, s, facts, trace_load)`` of ``scenarios.faults``


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
    fact_names: tuple[str, ...]  # what the hook writes into an episode's facts, in order
    cloud_credits: float = 6.0
    options: tuple[str, ...] = ()


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
        setup=faults.traffic_spike,
        fact_names=("fault_step", "spike_end"),
    ),
    Task(
        id="node_failure",
        mechanism="under 1.75x load one random worker's host dies at a random step (3-20): its pod crash-loops until deleted (rescheduled), and its ring neighbours absorb its share, saturate and cascade",
        task_hint="A worker node may crash; watch failed_nodes.",
        episode_steps=40,
        ideal_response="restart the crashed worker at once; scale up if the survivors saturate meanwhile",
        reference_solution=(_R("fault_step", 1, "kubectl delete pod node-{fault_node}"),),
        setup=faults.node_failure,
        fact_names=("fault_step", "fault_node"),
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
        setup=faults.cascading_failure,
        fact_names=("start", "fault_step", "hot_a", "hot_b", "cool_a", "cool_b"),
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
        setup=faults.flash_crowd,
        fact_names=("fault_step", "flash_end"),
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
        setup=faults.trace_replay,
        fact_names=("fault_step", "burst_start", "burst_end", "trace_offset"),
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
        setup=faults.thundering_herd,
        fact_names=("fault_step",),
    ),
    Task(
        id="zombie_node",
        mechanism="one worker keeps accepting its share but never answers: requests time out, CPU looks idle, p99 soars",
        task_hint="Latency is high but no node has failed.",
        episode_steps=40,
        ideal_response="find the idle worker with logs or CPU and restart it (or route traffic away from it)",
        reference_solution=(_R("fault_step", 1, "kubectl delete pod node-{fault_node}"),),
        setup=faults.zombie_node,
        fact_names=("fault_step", "fault_node"),
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
        setup=faults.memory_leak,
        fact_names=("fault_step", "fault_node", "restart_step", "restart_again"),
    ),
    Task(
        id="split_brain_io_bottleneck",
        mechanism="from a random step (3-15) one random worker writes to a diverged primary (split brain): its CPU runs high, every answer it gives is wrong (failed), and, in proportion to the traffic it takes, replication conflicts push DB io_wait above 0.8 and cut DB capacity to about the base load; replicas make it worse",
        task_hint="Database io_wait is abnormally high.",
        episode_steps=40,
        ideal_response="find the split worker (high CPU, its logs) and restart it or route traffic away from it; shed load only until it is fenced, and never scale up",
        reference_solution=(_R("fault_step", 1, "kubectl delete pod node-{fault_node}"),),
        setup=faults.split_brain,
        fact_names=("fault_step", "fault_node"),
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
        setup=faults.black_swan,
        fact_names=("fault_step", "az_0", "az_1", "az_2", "az_3"),
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
        setup=faults.retry_storm,
        fact_names=("fault_step",),
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
        setup=faults.hot_shard,
        fact_names=("fault_step", "fault_node", "cool_a", "cool_b", "cool_c", "cool_d", "cool_e"),
    ),
    Task(
        id="connection_pool_deadlock",
        mechanism="the DB connection pool leaks 4.5-6 % per step from an early step; DB capacity shrinks until it hangs, while workers idle",
        task_hint="Database connections are not being released.",
        episode_steps=50,
        ideal_response="restart the database as soon as the pool leak shows (rising p99 with idle workers); a restart clears it",
        reference_solution=(_R("fault_step", 3, "kubectl delete pod node-0"),),
        setup=faults.pool_deadlock,
        fact_names=("fault_step",),
    ),
    Task(
        id="autoscaler_flapping_trap",
        mechanism="from a random step (5-20), for 18-24 steps, load storms between 0.3x and 3.15x (period 12-15 steps) between calm phases of 1-1.7x; replicas boot for 3 steps and live 5, so scaling on peaks lands in troughs",
        task_hint="Load is oscillating; beware of reactive scaling.",
        episode_steps=50,
        ideal_response="throttle through the storm and release as soon as it passes (a throttle held through the calm phases costs more than it saves); never chase peaks with replicas",
        reference_solution=(_R("fault_step", 0, "kubectl throttle ingress --rate=0.70"), _R("storm_end", 0, _RELEASE)),
        setup=faults.autoscaler_trap,
        fact_names=("fault_step", "storm_end", "period"),
    ),
)


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
        setup=faults.healthy,
        fact_names=("start",),
    ),
)
