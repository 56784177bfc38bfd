"""Slow pure-Python twins of DIME's kernels, written from their docstrings.

Each twin is deliberately naive (Python ints for the RNG, scalar loops, a different
search for the latency quantile) so that agreement with the compiled kernel is evidence,
not a tautology. Tests compare kernels against these; nothing here imports Numba.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from dime_gym.core.latency import NEGLIGIBLE_TAIL_MEANS
from dime_gym.core.observe import DROPPED_VALUE
from dime_gym.core.params import OOM_THRESHOLD
from dime_gym.core.reward import DB_STRESS_UTIL, MEM_PRESSURE_START, RESTARTING_CREDIT
from dime_gym.core.state import ERROR_BUDGET_MAX, FIRST_WORKER, MAX_REPLICAS, N_NODES, N_WORKERS
from dime_gym.scenarios.graders import FRICTION_PER_STEP_BUDGET, GRADER_WEIGHTS

MASK64 = 0xFFFFFFFFFFFFFFFF
GOLDEN = 0x9E3779B97F4A7C15


# --- rng ---------------------------------------------------------------------------------
def mix64(z: int) -> int:
    """splitmix64 finaliser on a Python int, reduced mod 2**64 after every multiply."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def next_uniform(state: int) -> tuple[int, float]:
    """Advance a splitmix64 state; return ``(new_state, uniform in [0, 1))``."""
    state = (state + GOLDEN) & MASK64
    return state, (mix64(state) >> 11) / 2.0**53


def next_normal(state: int, table_points: int = 4096) -> tuple[int, float]:
    """Inverse normal CDF of one uniform, interpolated linearly between its values at the
    midpoints ``(i + 0.5) / table_points`` and held at the outermost ones beyond them; return
    ``(new_state, standard normal)``."""
    state, u = next_uniform(state)
    position = u * table_points - 0.5  # in units of midpoints
    i = min(table_points - 2, max(0, math.floor(position)))
    fraction = min(1.0, max(0.0, position - i))
    below = NormalDist().inv_cdf((i + 0.5) / table_points)
    above = NormalDist().inv_cdf((i + 1.5) / table_points)
    return state, below + fraction * (above - below)


def seed_streams(seed: int, n_streams: int = 2) -> list[int]:
    """Initial stream states: the finaliser of the seed xor a per-stream constant."""
    base = seed & MASK64
    return [mix64(base ^ ((0x1234567 * (k + 1)) & MASK64)) for k in range(n_streams)]


# --- latency -----------------------------------------------------------------------------
def mixture_tail(x: float, share, wait_ms, mean_ms) -> float:
    """P(latency > x) of a mixture of shifted exponentials / point masses (an exponential's
    tail counts as 0 from ``NEGLIGIBLE_TAIL_MEANS`` means past its wait)."""
    total = 0.0
    for w, wait, mean in zip(share, wait_ms, mean_ms):
        if w <= 0.0:
            continue
        if x < wait:
            total += w
        elif mean > 0.0 and (x - wait) / mean < NEGLIGIBLE_TAIL_MEANS:
            total += w * math.exp(-(x - wait) / mean)
    return total


def mixture_quantile(q: float, share, wait_ms, mean_ms, cap_ms: float, tol_ms: float = 1e-7) -> float:
    """inf{x >= 0 : P(latency > x) <= 1 - q}, capped at ``cap_ms``, to ``tol_ms``.

    Brackets the answer by doubling from 1 ms, then bisects, so its path differs from the
    kernel's fixed [0, cap] bisection."""
    target = 1.0 - q
    if mixture_tail(cap_ms, share, wait_ms, mean_ms) > target:
        return cap_ms
    if mixture_tail(0.0, share, wait_ms, mean_ms) <= target:
        return 0.0
    lo, hi = 0.0, 1.0
    while mixture_tail(hi, share, wait_ms, mean_ms) > target:
        lo, hi = hi, min(cap_ms, 2.0 * hi)
    while hi - lo > tol_ms:
        mid = 0.5 * (lo + hi)
        if mixture_tail(mid, share, wait_ms, mean_ms) > target:
            lo = mid
        else:
            hi = mid
    return hi


# --- reward components ---------------------------------------------------------------------
def mixture_quantile_by_bisection(q: float, share, wait_ms, mean_ms, cap_ms: float) -> float:
    """The kernel's contract, by its original algorithm: bisect [0, cap] while the bracket is
    at least 0.01 ms wide and return its upper end (a point of the cap / 2**20 grid)."""
    target = 1.0 - q
    if mixture_tail(cap_ms, share, wait_ms, mean_ms) > target:
        return cap_ms
    lo, hi = 0.0, cap_ms
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        if mixture_tail(mid, share, wait_ms, mean_ms) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 0.01:
            break
    return hi


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def r_topo(db_health: float, db_util: float, serving_workers: float) -> float:
    if db_health < 1.0:  # down (0) or restarting (RESTARTING_CREDIT): -2 scaled by what is missing
        return -2.0 * (1.0 - db_health)
    stress = _clip((db_util - DB_STRESS_UTIL) / (1.0 - DB_STRESS_UTIL), 0.0, 1.0)
    return 0.3 * (1.0 - stress) + 0.2 * serving_workers / N_WORKERS


def r_shed(offered_rps: float, good_rps: float) -> float:
    if offered_rps <= 0.0:
        return 0.0
    return -_clip(1.0 - good_rps / offered_rps, 0.0, 1.0)


def r_mem(max_mem: float) -> float:
    # "quadratic from 0.70 to the OOM line": the line is the one that kills nodes
    x = _clip((max_mem - MEM_PRESSURE_START) / (OOM_THRESHOLD - MEM_PRESSURE_START), 0.0, 1.0)
    return -x * x


def r_fric(friction: float) -> float:
    return -_clip(friction, 0.0, 0.5)


def r_lat(p99_ms: float, slo_ms: float, good_fraction: float) -> float:
    if good_fraction <= 0.0:  # offered but nothing served well: no latency to be proud of
        return -1.0
    ratio = p99_ms / slo_ms
    if ratio <= 1.0:
        return 0.5 * (1.0 - ratio) * min(1.0, good_fraction)
    return -min(1.0, 0.5 * math.log(ratio, 2))


def r_up(nodes_up: float) -> float:
    return nodes_up / N_NODES


def r_eff(error_budget: float, active_replicas: int) -> float:
    return 0.5 * error_budget / ERROR_BUDGET_MAX - 0.5 * active_replicas / MAX_REPLICAS


def reward_components_from_state(s, slo_ms: float, friction: float) -> list[float]:
    """The seven components recomputed from a post-step ``STATE_DTYPE`` record."""
    health = [0.0 if s["failed"][i] else RESTARTING_CREDIT if s["restart_left"][i] else 1.0 for i in range(N_NODES)]
    workers_up = sum(health[FIRST_WORKER:])
    max_mem = max([float(s["mem"][i]) for i in range(N_NODES) if health[i] == 1.0], default=0.0)
    active = sum(1 for r in range(MAX_REPLICAS) if int(s["replica_ttl_left"][r]) > 0)
    offered = float(s["offered_rps"])
    good_credit = min(float(s["good_rps"]), float(s["admitted_rps"]))  # no credit beyond what was admitted
    good_fraction = good_credit / offered if offered > 0 else 1.0
    return [
        r_topo(health[0], float(s["db_util"]), workers_up),
        r_shed(offered, good_credit),
        r_mem(max_mem),
        r_fric(friction),
        r_lat(float(s["latency_p99_ms"]), slo_ms, good_fraction),
        r_up(workers_up + health[0]),
        r_eff(float(s["error_budget"]), active),
    ]


# --- routing -------------------------------------------------------------------------------
def effective_route_weights(route_weight, serving) -> list[float]:
    """Each serving worker keeps its weight; a down worker's weight goes half to the nearest
    serving worker clockwise and half counter-clockwise on the ring 1..7 (all of it when both
    are the same worker; nowhere when no worker serves). The database (0) gets nothing."""
    eff = [0.0] * N_NODES
    workers = list(range(FIRST_WORKER, N_NODES))
    for pos, i in enumerate(workers):
        if serving[i]:
            eff[i] += float(route_weight[i])
            continue
        ring_cw = [workers[(pos + k) % N_WORKERS] for k in range(1, N_WORKERS)]
        ring_ccw = [workers[(pos - k) % N_WORKERS] for k in range(1, N_WORKERS)]
        cw = next((j for j in ring_cw if serving[j]), None)
        ccw = next((j for j in ring_ccw if serving[j]), None)
        if cw is None:
            continue
        if cw == ccw:
            eff[cw] += float(route_weight[i])
        else:
            eff[cw] += 0.5 * float(route_weight[i])
            eff[ccw] += 0.5 * float(route_weight[i])
    return eff


# --- graders -------------------------------------------------------------------------------
def grade(step: int, sum_offered: float, sum_good: float, steps_db_up: int, steps_slo_met: int,
          credits_spent: float, cloud_credits: float, friction_total: float) -> float:
    """The episode score formula of ``dime_gym.scenarios.graders`` on plain numbers."""
    steps = max(1, step)
    goodput = _clip(sum_good / sum_offered, 0.0, 1.0) if sum_offered > 0 else 1.0
    availability = steps_db_up / steps if step > 0 else 1.0  # nothing has gone wrong before step 1
    slo = steps_slo_met / steps if step > 0 else 1.0
    # cloud credits cost score only through the friction of the scale-ups that spent them
    resource_cost = min(1.0, friction_total / (FRICTION_PER_STEP_BUDGET * steps))
    w = GRADER_WEIGHTS
    quality = goodput * (w["base"] + w["availability"] * availability + w["slo"] * slo)
    return _clip(quality * (1.0 - w["resource"] * resource_cost), 0.0, 1.0)


# --- observation -------------------------------------------------------------------------
def build_observation(s) -> dict[str, np.ndarray]:
    """The Dict observation of state record ``s``, field by field from the docstrings of
    ``dime_gym.observation`` and ``core.observe`` (fresh arrays, never views of the state)."""
    down = (s["failed"] == 1) | (s["restart_left"] > 0)
    hidden = (s["dropped"] == 1) & ~down

    def node_field(values: np.ndarray) -> np.ndarray:
        out = np.where(down, 0.0, values).astype(np.float32)
        out[hidden] = DROPPED_VALUE
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
