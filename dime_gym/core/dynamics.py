"""One step of cluster physics: a queueing model where CPU is utilisation, not an integrator.

Order inside ``step_cluster`` (one step = ``STEP_SECONDS``):
  1. timers tick (restarts complete, cooldowns, replica boot and expiry);
  2. the action is applied (``actions.apply_action``);
  3. scheduled faults fire (crashes, zombies, pool leak);
  4. offered ingress = base rate x load profile x lognormal noise + client retries; the
     throttle admits a fraction, the rest is shed;
  5. admitted traffic is split over serving workers by routing weight; a worker that is down
     passes its share to its nearest serving ring neighbours (so overload cascades);
  6. workers serve what capacity and the database allow; queues grow and overflow;
  7. CPU, memory, io_wait and the latency mixture (mean, p99, good/timed-out fractions);
  8. failures: OOM, overload streaks, database saturation or pool exhaustion;
  9. retries for the next step, error budget, telemetry dropout, reward, grader tallies.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from dime_gym.core._jit import kernel, parallel_kernel
from dime_gym.core.actions import apply_action, begin_restart
from dime_gym.core.latency import class_tail, db_io_wait, db_response_ms, mixture_quantile
from dime_gym.core.nodes import is_serving
from dime_gym.core.params import (
    AUTO_RESTART_BACKOFF_STEPS,
    DB_AUTO_RESTART_BACKOFF_STEPS,
    CPU_BACKGROUND,
    DB_OVERLOAD_STEPS_TO_CRASH,
    DB_REPLICATION_CAPACITY_LOSS,
    GC_CAPACITY_LOSS,
    GC_PRESSURE_MEM,
    GC_SLOWDOWN,
    ERROR_BUDGET_BURN,
    ERROR_BUDGET_REFILL,
    MEM_AFTER_RESTART,
    MEM_BASELINE,
    MEM_DB_BASELINE,
    MEM_DB_PER_UTIL,
    MEM_PER_BUSY_CPU,
    MEM_PER_QUEUE_FILL,
    MEM_RELAX,
    OOM_THRESHOLD,
    OVERLOAD_QUEUE_FRACTION,
    OVERLOAD_STEPS_TO_CRASH,
    POOL_EXHAUSTED_FRACTION,
    REPLICA_WEIGHT,
    SPLIT_BRAIN_CPU,
    UTIL_CEILING,
    WORKER_SERVICE_MS,
    ZOMBIE_CPU,
)
from dime_gym.core.reward import compute_reward
from dime_gym.core.rng import STREAM_DYNAMICS, next_normal
from dime_gym.core.state import (
    DB,
    ERROR_BUDGET_MAX,
    EVENT_CRASHED,
    EVENT_DB_SATURATED,
    EVENT_OOM_KILLED,
    EVENT_OVERLOAD_CRASH,
    EVENT_POOL_EXHAUSTED,
    EVENT_RESTARTED,
    EVENT_SPLIT_BRAIN,
    EVENT_ZOMBIE,
    FIRST_WORKER,
    LATENCY_CAP_MS,
    MAX_EPISODE_STEPS,
    MAX_REPLICAS,
    MAX_REQUEST_RATE_RPS,
    MS_PER_SECOND,
    N_NODES,
    N_WORKERS,
    QUEUE_CAPACITY,
    STEP_SECONDS,
)
from dime_gym.core.telemetry import update_dropout

N_CLASSES = N_NODES + 1  # latency classes: one per node slot (workers) + the replica pool
REPLICA_CLASS = N_NODES


@kernel
def fail_node(s, i, event):
    """Crash node ``i``: its queued requests are lost. Returns the lost request count."""
    lost = s.queue[i]
    s.failed[i] = 1
    s.cpu[i] = 0.0
    s.mem[i] = 0.0
    s.mem_leaked[i] = 0.0
    s.queue[i] = 0.0
    s.overload_streak[i] = 0
    s.zombie[i] = 0
    s.split_brain[i] = 0
    s.last_event[i] = event
    s.auto_restart_left[i] = DB_AUTO_RESTART_BACKOFF_STEPS if i == DB else AUTO_RESTART_BACKOFF_STEPS
    if i == DB:
        s.db_overload_streak = 0
    return lost


@kernel
def tick_timers(p, s):
    """Advance restart, crash-loop, cooldown and replica timers by one step. Kubelet restarts
    a crashed node after its backoff, unless the node crash-loops (then only a manual
    ``delete pod``, which reschedules it, brings it back)."""
    for i in range(N_NODES):
        if s.failed[i] == 1 and s.auto_restart_left[i] > 0:
            s.auto_restart_left[i] -= 1
            if s.auto_restart_left[i] == 0:
                if p.crash_loops[i] == 1:
                    s.auto_restart_left[i] = AUTO_RESTART_BACKOFF_STEPS
                else:
                    begin_restart(s, i)
                    continue
        if s.restart_left[i] > 0:
            s.restart_left[i] -= 1
            if s.restart_left[i] == 0:
                s.last_event[i] = EVENT_RESTARTED
                s.mem[i] = MEM_AFTER_RESTART
        if s.cooldown_left[i] > 0:
            s.cooldown_left[i] -= 1
    for r in range(MAX_REPLICAS):
        if s.replica_ttl_left[r] > 0:
            s.replica_ttl_left[r] -= 1
            if s.replica_cold_left[r] > 0:
                s.replica_cold_left[r] -= 1
            if s.replica_ttl_left[r] == 0:
                s.replica_cold_left[r] = 0


@kernel
def fire_scheduled_faults(p, s):
    """Crash, zombify or leak whatever the scenario schedules for this step."""
    for i in range(N_NODES):
        if p.crash_step[i] == s.step and is_serving(s, i):
            fail_node(s, i, EVENT_CRASHED)
        if p.zombie_step[i] == s.step and is_serving(s, i):
            s.zombie[i] = 1
            s.last_event[i] = EVENT_ZOMBIE
        if p.split_brain_step[i] == s.step and is_serving(s, i):
            s.split_brain[i] = 1
            s.last_event[i] = EVENT_SPLIT_BRAIN
    if p.pool_leak_start_step == s.step:
        s.db_pool_leaking = 1
    if s.db_pool_leaking == 1 and is_serving(s, DB):
        s.db_pool_free = max(0.0, s.db_pool_free - p.pool_leak_per_step)


@kernel
def effective_route_weights(s, eff):
    """Fill ``eff`` with each serving worker's routing weight, plus the weight of every
    down worker split between its nearest serving neighbours on the ring 1 -> ... -> 7 -> 1."""
    for i in range(N_NODES):
        eff[i] = 0.0
    for i in range(FIRST_WORKER, N_NODES):
        if is_serving(s, i):
            eff[i] += s.route_weight[i]
            continue
        nxt = -1
        prv = -1
        for k in range(1, N_WORKERS):
            j = FIRST_WORKER + (i - FIRST_WORKER + k) % N_WORKERS
            if is_serving(s, j):
                nxt = j
                break
        for k in range(1, N_WORKERS):
            j = FIRST_WORKER + (i - FIRST_WORKER - k) % N_WORKERS
            if is_serving(s, j):
                prv = j
                break
        if nxt < 0:
            continue
        if nxt == prv:
            eff[nxt] += s.route_weight[i]
        else:
            eff[nxt] += 0.5 * s.route_weight[i]
            eff[prv] += 0.5 * s.route_weight[i]


@kernel
def split_brain_contention(p, s, admitted):
    """DB io contention from split-brain workers: ``replication_io`` for each one serving a fair
    share of the admitted traffic, in proportion to its share (routing traffic away from it
    fences it; shedding load everywhere does not, since its share stays the same)."""
    contention = 0.0
    fair_share = admitted / N_WORKERS
    for i in range(FIRST_WORKER, N_NODES):
        if s.split_brain[i] == 1 and is_serving(s, i) and fair_share > 0.0:
            contention += p.replication_io * min(1.0, s.arrival_rps[i] / fair_share)
    return contention


@kernel
def step_cluster(p, s, action):
    """Advance one cluster by one step, in place.

    Args:
        p: ``PARAMS_DTYPE`` record of the cluster's task.
        s: ``STATE_DTYPE`` record, updated in place (reward in ``s.reward``).
        action: ``(4,) int64`` action vector, already range-checked.
    """
    dt = STEP_SECONDS
    tick_timers(p, s)
    errors, friction = apply_action(p, s, action)
    fire_scheduled_faults(p, s)
    failed_rps = 0.0

    # --- replicas ------------------------------------------------------------------------
    active_replicas = 0
    ready_replicas = 0
    for r in range(MAX_REPLICAS):
        if s.replica_ttl_left[r] > 0:
            active_replicas += 1
            if s.replica_cold_left[r] == 0:
                ready_replicas += 1

    # --- ingress ---------------------------------------------------------------------------
    t = min(s.step, MAX_EPISODE_STEPS - 1)
    sigma = p.arrival_noise_sigma
    noise = math.exp(sigma * next_normal(s.rng, STREAM_DYNAMICS) - 0.5 * sigma * sigma)
    offered = min(MAX_REQUEST_RATE_RPS, p.base_rate_rps * p.load_profile[t] * noise + s.retry_rps)
    admitted = offered * s.throttle_rate
    s.offered_rps = offered
    s.admitted_rps = admitted
    s.shed_rps = offered - admitted

    # --- routing ---------------------------------------------------------------------------
    # one scratch allocation per step (six separate arrays cost more than the routing itself)
    scratch = np.zeros((6, N_CLASSES))
    eff = scratch[0]
    effective_route_weights(s, eff)
    total_weight = ready_replicas * REPLICA_WEIGHT
    for i in range(N_NODES):
        total_weight += eff[i]
    for i in range(N_NODES):
        s.arrival_rps[i] = admitted * eff[i] / total_weight if total_weight > 0.0 else 0.0
    replica_arrival = admitted * ready_replicas * REPLICA_WEIGHT / total_weight if total_weight > 0.0 else 0.0
    if total_weight <= 0.0:
        failed_rps += admitted

    # --- database capacity and demand ------------------------------------------------------
    db_up = is_serving(s, DB)
    contention = p.replica_io_penalty * active_replicas + split_brain_contention(p, s, admitted)
    db_capacity = p.db_capacity_rps * s.db_pool_free / (1.0 + DB_REPLICATION_CAPACITY_LOSS * contention)
    if p.db_slowdown_start_step >= 0 and p.db_slowdown_start_step <= s.step < p.db_slowdown_start_step + p.db_slowdown_steps:
        db_capacity *= p.db_slowdown_factor
    if not db_up:
        db_capacity = 0.0
    mu = p.worker_capacity_rps
    gc_pressure = scratch[1]
    desired = scratch[2]
    demand = 0.0
    for i in range(FIRST_WORKER, N_NODES):
        if is_serving(s, i) and s.zombie[i] == 0:
            # garbage-collection pauses: from GC_PRESSURE_MEM memory, capacity falls and service slows
            gc_pressure[i] = min(1.0, max(0.0, (s.mem[i] - GC_PRESSURE_MEM) / (OOM_THRESHOLD - GC_PRESSURE_MEM)))
            desired[i] = min(s.arrival_rps[i] + s.queue[i] / dt, mu * (1.0 - GC_CAPACITY_LOSS * gc_pressure[i]))
            demand += desired[i]
    desired[REPLICA_CLASS] = min(replica_arrival, mu * ready_replicas)
    demand += desired[REPLICA_CLASS]
    booting = active_replicas - ready_replicas
    overhead = p.db_capacity_rps * (p.replica_db_overhead * ready_replicas + p.replica_warmup_db_load * booting)
    total_demand = demand + overhead
    scale = 1.0
    if db_capacity <= 0.0:
        scale = 0.0
    elif total_demand > db_capacity:
        scale = db_capacity / total_demand
    db_util = min(1.0, total_demand / db_capacity) if db_capacity > 0.0 else 0.0
    s.db_util = db_util
    s.io_wait = db_io_wait(db_util, contention)

    # --- serving, queues, CPU ---------------------------------------------------------------
    share = scratch[3]
    wait_ms = scratch[4]
    mean_ms = scratch[5]
    db_ms = db_response_ms(db_util, s.io_wait)
    in_flight = 0.0
    for i in range(FIRST_WORKER, N_NODES):
        s.served_rps[i] = 0.0
        if not is_serving(s, i):
            s.cpu[i] = 0.0
            continue
        if s.zombie[i] == 1:
            # accepts its share, holds each request until the client gives up, fails it
            s.cpu[i] = ZOMBIE_CPU
            share[i] = s.arrival_rps[i]
            wait_ms[i] = p.client_timeout_ms
            failed_rps += s.arrival_rps[i]
            in_flight += s.arrival_rps[i]
            continue
        served = desired[i] * scale
        q = s.queue[i] + (s.arrival_rps[i] - served) * dt
        if q > QUEUE_CAPACITY:
            failed_rps += (q - QUEUE_CAPACITY) / dt
            q = QUEUE_CAPACITY
        s.queue[i] = max(0.0, q)
        s.served_rps[i] = served
        mu_i = mu * (1.0 - GC_CAPACITY_LOSS * gc_pressure[i])
        rho = served / mu_i
        s.cpu[i] = CPU_BACKGROUND + (1.0 - CPU_BACKGROUND) * rho
        if s.split_brain[i] == 1:
            # answers from a diverged primary: fast, but wrong (failed, never good)
            s.cpu[i] = min(1.0, s.cpu[i] + SPLIT_BRAIN_CPU)
            failed_rps += served
        else:
            share[i] = served
            wait_ms[i] = min(LATENCY_CAP_MS, MS_PER_SECOND * s.queue[i] / mu_i)
            service_ms = WORKER_SERVICE_MS * (1.0 + GC_SLOWDOWN * gc_pressure[i])
            mean_ms[i] = min(LATENCY_CAP_MS, service_ms / (1.0 - min(rho, UTIL_CEILING)) + db_ms)
            in_flight += served
        if rho >= UTIL_CEILING and s.queue[i] >= OVERLOAD_QUEUE_FRACTION * QUEUE_CAPACITY:
            s.overload_streak[i] += 1
        elif s.overload_streak[i] > 0:
            s.overload_streak[i] -= 1
    replica_served = desired[REPLICA_CLASS] * scale
    failed_rps += replica_arrival - replica_served
    if ready_replicas > 0 and replica_served > 0.0:
        rho_r = replica_served / (mu * ready_replicas)
        share[REPLICA_CLASS] = replica_served
        mean_ms[REPLICA_CLASS] = WORKER_SERVICE_MS / (1.0 - min(rho_r, UTIL_CEILING)) + db_ms
        in_flight += replica_served
    if db_up:
        s.cpu[DB] = CPU_BACKGROUND + (1.0 - CPU_BACKGROUND) * db_util
        s.served_rps[DB] = demand * scale
    else:
        s.cpu[DB] = 0.0
        s.served_rps[DB] = 0.0

    # --- latency mixture -------------------------------------------------------------------
    served_ok = 0.0
    good = 0.0
    latency_mean = 0.0
    if in_flight > 0.0:
        for k in range(N_CLASSES):
            if share[k] > 0.0:
                w = share[k] / in_flight
                latency_mean += w * min(LATENCY_CAP_MS, wait_ms[k] + mean_ms[k])
                if mean_ms[k] > 0.0:  # real service (zombie classes were counted as failed)
                    timed_out = share[k] * class_tail(p.client_timeout_ms, wait_ms[k], mean_ms[k])
                    served_ok += share[k] - timed_out
                    failed_rps += timed_out
                    good += share[k] * (1.0 - class_tail(p.slo_p99_ms, wait_ms[k], mean_ms[k]))
                share[k] = w
        p99 = mixture_quantile(0.99, share, wait_ms, mean_ms, N_CLASSES)
    elif admitted > 0.0:
        # requests arrive but nothing completes (e.g. database down): clients time out
        latency_mean = p.client_timeout_ms
        p99 = p.client_timeout_ms
    else:
        p99 = 0.0
    s.latency_mean_ms = latency_mean
    s.latency_p99_ms = p99
    s.served_total_rps = served_ok
    s.good_rps = good

    # --- memory and failures ------------------------------------------------------------------
    for i in range(N_NODES):
        if not is_serving(s, i):
            continue
        if i == DB:
            target = MEM_DB_BASELINE + MEM_DB_PER_UTIL * db_util
        else:
            target = MEM_BASELINE + MEM_PER_BUSY_CPU * (s.cpu[i] - CPU_BACKGROUND) + MEM_PER_QUEUE_FILL * s.queue[i] / QUEUE_CAPACITY
        working = s.mem[i] - s.mem_leaked[i]
        working += MEM_RELAX * (target - working)
        if s.step >= p.mem_leak_start_step:
            s.mem_leaked[i] += p.mem_leak_per_step[i]
        s.mem[i] = min(1.0, max(0.0, working + s.mem_leaked[i]))
        if s.mem[i] >= OOM_THRESHOLD:
            failed_rps += fail_node(s, i, EVENT_OOM_KILLED) / dt
        elif i != DB and s.overload_streak[i] >= OVERLOAD_STEPS_TO_CRASH:
            failed_rps += fail_node(s, i, EVENT_OVERLOAD_CRASH) / dt
    if is_serving(s, DB):
        if s.db_pool_free < POOL_EXHAUSTED_FRACTION:
            fail_node(s, DB, EVENT_POOL_EXHAUSTED)
        else:
            if total_demand >= db_capacity:
                s.db_overload_streak += 1
            elif s.db_overload_streak > 0:
                s.db_overload_streak -= 1
            if s.db_overload_streak >= DB_OVERLOAD_STEPS_TO_CRASH:
                fail_node(s, DB, EVENT_DB_SATURATED)

    # --- feedback, budgets, telemetry, reward, tallies ------------------------------------
    failed_rps = min(failed_rps, admitted)
    s.failed_rps = failed_rps
    s.retry_rps = min(MAX_REQUEST_RATE_RPS, p.retry_gain * failed_rps)
    bad_fraction = (s.shed_rps + failed_rps) / offered if offered > 0.0 else 0.0
    s.error_budget = min(ERROR_BUDGET_MAX, max(0.0, s.error_budget + ERROR_BUDGET_REFILL - ERROR_BUDGET_BURN * bad_fraction))
    update_dropout(p, s)
    compute_reward(p, s, friction, active_replicas)
    s.sum_offered += offered
    s.sum_good += good
    db_up_now = is_serving(s, DB)
    if db_up_now:
        s.steps_db_up += 1
        # the SLO holds while traffic is served fast and its error budget is not spent
        if served_ok > 0.0 and p99 <= p.slo_p99_ms and s.error_budget > 0.0:
            s.steps_slo_met += 1
    s.friction_total += friction
    s.step += 1


@kernel
def step_batch_serial(params, states, actions):
    """Step every cluster of a batch with its own action, in order (small batches)."""
    for b in range(states.shape[0]):
        step_cluster(params[b], states[b], actions[b])


@parallel_kernel
def step_batch_parallel(params, states, actions):
    """Step every cluster of a batch with its own action, spread over cores (large batches)."""
    for b in prange(states.shape[0]):
        step_cluster(params[b], states[b], actions[b])
