"""The seven reward components. Each is a small pure function with its bounds documented;
the step reward is their sum clipped to ``[REWARD_MIN, REWARD_MAX]``.

Order (also the order of ``info["reward_components"]`` arrays): r_topo, r_shed, r_mem,
r_fric, r_lat, r_up, r_eff. Healthy and economical is about +2.4; a dead database about -4.
"""

from __future__ import annotations

import math

from dime_gym.core._jit import inlined_kernel, kernel
from dime_gym.core.nodes import is_serving
from dime_gym.core.params import OOM_THRESHOLD
from dime_gym.core.state import DB, ERROR_BUDGET_MAX, FIRST_WORKER, MAX_REPLICAS, N_NODES, N_WORKERS

REWARD_COMPONENTS = ("r_topo", "r_shed", "r_mem", "r_fric", "r_lat", "r_up", "r_eff")
REWARD_BOUNDS = {
    "r_topo": (-2.0, 0.5),
    "r_shed": (-1.0, 0.0),
    "r_mem": (-1.0, 0.0),
    "r_fric": (-0.5, 0.0),
    "r_lat": (-1.0, 0.5),
    "r_up": (0.0, 1.0),
    "r_eff": (-0.5, 0.5),
}
REWARD_MIN, REWARD_MAX = -5.0, 5.0
DB_STRESS_UTIL = 0.8  # DB utilisation above which r_topo starts to fall
MEM_PRESSURE_START = 0.70
RESTARTING_CREDIT = 0.5  # a node whose restart is under way counts as this much restored


@kernel
def r_topo(db_health, db_util, serving_workers):
    """Topology health, database first, in [-2, 0.5]: -2 while the DB is down, -1 while it
    restarts (``db_health`` 0 / ``RESTARTING_CREDIT`` / 1); otherwise 0.3 scaled down by DB
    stress (utilisation 0.8 -> 1) plus 0.2 x the serving worker fraction (``serving_workers``
    counts restarting workers at ``RESTARTING_CREDIT``)."""
    if db_health < 1.0:
        return -2.0 * (1.0 - db_health)
    stress = min(1.0, max(0.0, (db_util - DB_STRESS_UTIL) / (1.0 - DB_STRESS_UTIL)))
    return 0.3 * (1.0 - stress) + 0.2 * serving_workers / N_WORKERS


@kernel
def r_shed(offered_rps, good_rps):
    """Load shed in [-1, 0]: minus the fraction of offered requests not served within the SLO
    (throttled, dropped, failed or too slow), so shedding traffic is never free."""
    if offered_rps <= 0.0:
        return 0.0
    return -min(1.0, max(0.0, 1.0 - good_rps / offered_rps))


@kernel
def r_mem(max_mem):
    """Memory pressure in [-1, 0]: quadratic from 0.70 to the 0.98 OOM line."""
    x = min(1.0, max(0.0, (max_mem - MEM_PRESSURE_START) / (OOM_THRESHOLD - MEM_PRESSURE_START)))
    return -x * x


@kernel
def r_fric(friction):
    """Action friction in [-0.5, 0]: the action's cost (restarts and scale-ups dearest,
    invalid actions surcharged), so thrashing is paid for every step."""
    return -min(0.5, max(0.0, friction))


@kernel
def r_lat(p99_ms, slo_ms, good_fraction):
    """Tail latency in [-1, 0.5]: under the SLO, 0.5 x (1 - p99/SLO) x the fraction of offered
    requests served within it (no credit for traffic shed or failed); above the SLO
    -log2(p99/SLO)/2, continuous at the SLO and saturating at four times it; -1 when requests
    are offered but none is served well (a fast p99 of nothing is not a fast service)."""
    if good_fraction <= 0.0:
        return -1.0
    x = p99_ms / slo_ms
    if x <= 1.0:
        return 0.5 * (1.0 - x) * min(1.0, good_fraction)
    return -min(1.0, 0.5 * math.log2(x))


@kernel
def r_up(nodes_up):
    """Uptime in [0, 1]: the fraction of the 8 permanent nodes serving (a restarting node
    counts ``RESTARTING_CREDIT``: capacity on its way back is not the same as a dead node)."""
    return nodes_up / N_NODES


@kernel
def r_eff(error_budget, active_replicas):
    """Efficiency in [-0.5, 0.5]: half the remaining error budget fraction minus half the
    fraction of replica slots paid for."""
    return 0.5 * error_budget / ERROR_BUDGET_MAX - 0.5 * active_replicas / MAX_REPLICAS


@kernel
def node_health(s, i):
    """1 if node ``i`` serves, ``RESTARTING_CREDIT`` while it restarts, 0 if it is down."""
    if is_serving(s, i):
        return 1.0
    if s.failed[i] != 0:
        return 0.0
    return RESTARTING_CREDIT


@inlined_kernel
def compute_reward(p, s, friction, active_replicas):
    """Fill ``s.reward_components`` and ``s.reward`` from the post-step state."""
    workers_up = 0.0
    max_mem = 0.0
    for i in range(N_NODES):
        health = node_health(s, i)
        if i >= FIRST_WORKER:
            workers_up += health
        if health == 1.0 and s.mem[i] > max_mem:
            max_mem = s.mem[i]
    db_health = node_health(s, DB)
    # a step is credited with at most the traffic it admitted: draining an old backlog while
    # shedding everything new must not read as perfect service (the grader counts the backlog
    # when it was offered and when it is served, over the whole episode)
    good_credit = min(s.good_rps, s.admitted_rps)
    good_fraction = good_credit / s.offered_rps if s.offered_rps > 0.0 else 1.0
    c = s.reward_components
    c[0] = r_topo(db_health, s.db_util, workers_up)
    c[1] = r_shed(s.offered_rps, good_credit)
    c[2] = r_mem(max_mem)
    c[3] = r_fric(friction)
    c[4] = r_lat(s.latency_p99_ms, p.slo_p99_ms, good_fraction)
    c[5] = r_up(workers_up + db_health)
    c[6] = r_eff(s.error_budget, active_replicas)
    total = 0.0
    for k in range(c.shape[0]):
        total += c[k]
    s.reward = min(REWARD_MAX, max(REWARD_MIN, total))

