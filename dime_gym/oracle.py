"""The triage oracle: the seed's 10 rules, first match wins, as one ordered table.

Each rule is ``(id, name, test, act)``: ``test(view)`` returns ``None`` or a match (the
nodes it found), ``act(view, match)`` the action. The thresholds live once in
``TRIAGE_THRESHOLDS``; the system prompt renders its rule text from the same values.

Five fixes over the original, which each cost it score: DB recovery is checked before the
black-swan rule (the seed's priority inversion); a throttle that is already in force is held
(no_op) instead of being re-issued every step, and so is one the empty error budget would
refuse (tightening is not allowed then); rule 10 releases a throttle, in stages,
once the load it would let back in projects under the scale and DB-stress thresholds, so a
throttle is never left on forever; and rule 9 does not scale while a node is restarting
(its capacity is already on the way back, and a cold replica only loads the database).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np

from dime_gym.core.actions import NO_OP, RATE_LEVELS, REROUTE, RESTART, SCALE_UP, THROTTLE, level_from_rate, rate_from_level
from dime_gym.core.params import CPU_BACKGROUND
from dime_gym.core.state import DB, FIRST_WORKER, N_NODES
from dime_gym.observation import display_value
from dime_gym.commands import format_action

TRIAGE_THRESHOLDS = {
    "oom_mem": 0.92,
    "split_brain_io_wait": 0.80,
    "split_brain_rate": 0.5,
    "hot_worker_cpu": 0.90,
    "hot_shard_mean_cpu": 0.60,
    "retry_p99_ms": 100.0,
    "retry_request_rate_rps": 150.0,
    "retry_rate": 0.4,
    "zombie_cpu": 0.10,
    "zombie_p99_ms": 100.0,
    "zombie_peer_cpu": 0.20,
    "black_swan_failed_nodes": 2,
    "black_swan_rate": 0.3,
    "db_stress_cpu": 0.80,
    "db_stress_rate": 0.7,
    "scale_mean_cpu": 0.75,
    "scale_min_error_budget": 20.0,
    "release_headroom": 0.10,
}
T = TRIAGE_THRESHOLDS


@dataclasses.dataclass(frozen=True)
class ClusterView:
    """The observation fields the rules read, as plain Python values."""

    cpu: tuple[float, ...]
    mem: tuple[float, ...]
    failed: frozenset[int]
    restarting: frozenset[int]
    p99_ms: float
    request_rate_rps: float
    io_wait: float
    error_budget: float
    cloud_budget: float
    throttle_rate: float

    @classmethod
    def from_observation(cls, obs: Mapping) -> ClusterView:
        """Accept the env's Dict observation (node masks) or the prompt's JSON (node index
        lists). Values are read at display precision (``DISPLAY_DECIMALS``), so the oracle
        decides the same from either and knows no more than a model reading the prompt."""

        def scalar(key: str, default: float) -> float:
            return float(display_value(key, obs.get(key, default)))

        def nodes(key: str) -> frozenset[int]:
            value = obs.get(key, [])
            if isinstance(value, np.ndarray):  # a mask
                return frozenset(np.flatnonzero(value).tolist())
            indices = [int(i) for i in value]
            if len(set(indices)) != len(indices):  # e.g. a mask turned into a list with .tolist()
                raise ValueError(f"{key} must be a list of distinct node indices (the prompt's JSON form) "
                                 f"or an ({N_NODES},) mask array, got {value!r}")
            return frozenset(indices)

        return cls(
            cpu=tuple(display_value("cpu_loads", obs["cpu_loads"])),
            mem=tuple(display_value("mem_utilizations", obs["mem_utilizations"])),
            failed=nodes("failed_nodes"),
            restarting=nodes("restarting_nodes"),
            p99_ms=scalar("p99_latency", 0.0),
            request_rate_rps=scalar("request_rate", 0.0),
            io_wait=scalar("io_wait", 0.0),
            error_budget=scalar("error_budget", 100.0),
            cloud_budget=scalar("cloud_budget", 0.0),
            throttle_rate=scalar("throttle_rate", 1.0),
        )

    def serving(self, i: int) -> bool:
        return i not in self.failed and i not in self.restarting

    def visible_workers(self) -> list[int]:
        """Serving workers whose telemetry is not dropped."""
        return [i for i in range(FIRST_WORKER, N_NODES) if self.serving(i) and self.cpu[i] >= 0.0]

    def mean_worker_cpu(self) -> float:
        workers = self.visible_workers()
        return sum(self.cpu[i] for i in workers) / len(workers) if workers else 0.0


Action = tuple[int, int, int, int]


def _throttle(rate: float) -> Action:
    return (THROTTLE, 0, 0, level_from_rate(rate))


def _oom(v: ClusterView):
    hot = [i for i in range(N_NODES) if v.serving(i) and v.mem[i] > T["oom_mem"]]
    return hot[0] if hot else None


def _hot_shard(v: ClusterView):
    workers = v.visible_workers()
    if len(workers) < 2 or v.mean_worker_cpu() >= T["hot_shard_mean_cpu"]:
        return None
    hot = max(workers, key=lambda i: v.cpu[i])
    if v.cpu[hot] <= T["hot_worker_cpu"]:
        return None
    cool = min((i for i in workers if i != hot), key=lambda i: v.cpu[i])
    return hot, cool


def _zombie(v: ClusterView):
    if v.p99_ms <= T["zombie_p99_ms"]:
        return None
    workers = v.visible_workers()
    for i in workers:
        if v.cpu[i] < T["zombie_cpu"]:
            peers = [j for j in workers if j != i and v.cpu[j] > T["zombie_peer_cpu"]]
            if peers:
                return i, peers[0]
    return None


def _release(v: ClusterView) -> Action:
    """Rule 10: raise a throttle to the largest rate whose projected load stays a headroom
    below the scale and DB-stress thresholds (so releasing does not re-trigger them)."""
    if v.throttle_rate >= 1.0:
        return (NO_OP, 0, 0, 0)
    theta = max(v.throttle_rate, 0.05)
    limits = [1.0]
    mean_cpu = v.mean_worker_cpu()
    if mean_cpu > CPU_BACKGROUND:
        target = T["scale_mean_cpu"] - T["release_headroom"]
        limits.append(theta * (target - CPU_BACKGROUND) / (mean_cpu - CPU_BACKGROUND))
    if v.serving(DB) and v.cpu[DB] > CPU_BACKGROUND:
        target = T["db_stress_cpu"] - T["release_headroom"]
        limits.append(theta * (target - CPU_BACKGROUND) / (v.cpu[DB] - CPU_BACKGROUND))
    new_rate = rate_from_level(math.floor(min(limits) * (RATE_LEVELS - 1) + 1e-9))
    if new_rate > v.throttle_rate + 1e-9:
        return _throttle(new_rate)
    return (NO_OP, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One triage rule: ``test`` finds a match (or ``None``), ``act`` turns it into an action."""

    id: int
    name: str
    text: str
    test: Callable[[ClusterView], object]
    act: Callable[[ClusterView, object], Action]


RULES: tuple[Rule, ...] = (
    Rule(1, "oom", f"OOM: if any node mem > {T['oom_mem']} -> kubectl delete pod node-<i>",
         _oom, lambda v, i: (RESTART, i, 0, 0)),
    Rule(2, "db_recovery", "DB RECOVERY: if node-0 in failed_nodes -> kubectl delete pod node-0",
         lambda v: True if DB in v.failed else None, lambda v, m: (RESTART, DB, 0, 0)),
    Rule(3, "split_brain", f"SPLIT-BRAIN: if io_wait > {T['split_brain_io_wait']} -> kubectl throttle ingress --rate={T['split_brain_rate']}",
         lambda v: True if v.io_wait > T["split_brain_io_wait"] else None, lambda v, m: _throttle(T["split_brain_rate"])),
    Rule(4, "hot_shard", f"HOT-SHARD: if one worker cpu > {T['hot_worker_cpu']} while mean worker cpu < {T['hot_shard_mean_cpu']} -> reroute traffic from it to the coolest worker",
         _hot_shard, lambda v, m: (REROUTE, m[0], m[1], 0)),
    Rule(5, "retry_storm", f"RETRY STORM: if p99 > {T['retry_p99_ms']:g}ms and request_rate > {T['retry_request_rate_rps']:g} -> kubectl throttle ingress --rate={T['retry_rate']}",
         lambda v: True if v.p99_ms > T["retry_p99_ms"] and v.request_rate_rps > T["retry_request_rate_rps"] else None,
         lambda v, m: _throttle(T["retry_rate"])),
    Rule(6, "zombie", f"ZOMBIE NODE: if a worker cpu < {T['zombie_cpu']} while p99 > {T['zombie_p99_ms']:g}ms and another worker cpu > {T['zombie_peer_cpu']} -> reroute traffic from it to that worker",
         _zombie, lambda v, m: (REROUTE, m[0], m[1], 0)),
    Rule(7, "black_swan", f"BLACK SWAN: if {T['black_swan_failed_nodes']}+ nodes failed (DB alive) -> kubectl throttle ingress --rate={T['black_swan_rate']}",
         lambda v: True if len(v.failed) >= T["black_swan_failed_nodes"] else None, lambda v, m: _throttle(T["black_swan_rate"])),
    Rule(8, "db_stress", f"DB STRESS: if node-0 cpu > {T['db_stress_cpu']} -> kubectl throttle ingress --rate={T['db_stress_rate']}",
         lambda v: True if v.cpu[DB] > T["db_stress_cpu"] else None, lambda v, m: _throttle(T["db_stress_rate"])),
    Rule(9, "safe_scale", f"SAFE SCALE: if mean worker cpu > {T['scale_mean_cpu']}, error_budget > {T['scale_min_error_budget']:g}, cloud_budget >= 1 and no node is restarting -> kubectl scale deployment frontend --replicas=1",
         lambda v: True if v.mean_worker_cpu() > T["scale_mean_cpu"] and v.error_budget > T["scale_min_error_budget"] and v.cloud_budget >= 1 and not v.restarting else None,
         lambda v, m: (SCALE_UP, 0, 0, 0)),
    Rule(10, "healthy", f"HEALTHY: no_op; if a throttle is on, raise it to the highest rate whose projected load stays {T['release_headroom']} below the SAFE SCALE and DB STRESS cpu thresholds",
         lambda v: True, lambda v, m: _release(v)),
)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the oracle chose: the action, its kubectl command and the rule that fired."""

    action: Action
    command: str
    rule_id: int
    rule_name: str


def triage(obs: Mapping) -> Decision:
    """Run the rules in order on an observation; the first whose test matches decides."""
    view = ClusterView.from_observation(obs)
    for rule in RULES:
        match = rule.test(view)
        if match is None:
            continue
        action = rule.act(view, match)
        if action[0] == THROTTLE and (abs(rate_from_level(action[3]) - view.throttle_rate) < 1e-6
                                      or (view.error_budget <= 0.0 and rate_from_level(action[3]) < view.throttle_rate)):
            action = (NO_OP, 0, 0, 0)  # already in force, or a tightening the empty error budget refuses: hold
        return Decision(action=action, command=format_action(action), rule_id=rule.id, rule_name=rule.name)
    raise AssertionError("rule 10 always matches")


def oracle_policy(obs: Mapping) -> np.ndarray:
    """The oracle as a policy: observation -> action array."""
    return np.asarray(triage(obs).action, dtype=np.int64)


__all__ = ["ClusterView", "Decision", "RULES", "Rule", "TRIAGE_THRESHOLDS", "oracle_policy", "triage"]
