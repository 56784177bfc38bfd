"""One step of cluster physics: a queueing model where CPU is utilisation, not an integrator.

Phases of ``step_cluster``, one kernel each, in order (one step = ``STEP_SECONDS``):
  1. restarts and timers (``tick_timers``): restarts complete, kubelet restarts crashed pods,
     cooldowns, replica boot and expiry;
  2. the action is applied (``actions.apply_action``), then scheduled faults fire
     (``fire_scheduled_faults``: crashes, zombies, split brain, pool leak);
  3. arrivals (``arrivals``): base rate x load profile x lognormal noise + client retries; the
     throttle admits a fraction, the rest is shed;
  4. routing (``routing``): admitted traffic is split over serving workers by routing weight; a
     worker that is down passes its share to its nearest serving ring neighbours (so overload
     cascades);
  5. the database (``database_capacity``, ``database_demand``): what it can serve, what the
     workers ask of it, io_wait;
  6. service (``service``): workers serve what capacity and the database allow; queues grow and
     overflow; CPU follows utilisation;
  7. latency (``latency``): the mixture's mean and p99, timeouts, requests within the SLO;
  8. failures (``failures``): memory, OOM, overload streaks, database saturation or pool
     exhaustion;
  9. retries and error budget (``retries_and_error_budget``), telemetry dropout
     (``telemetry.update_dropout``).
Outside the physics, and reading only its results: the reward (``reward.compute_reward``) and
the grader's tallies (``tally_grader``).
"""

from __future__ import annotations

import math

from numba import prange

from dime_gym.core._jit import borrowed, inlined_kernel, kernel, parallel_kernel, stack_zeros
from dime_gym.core.actions import apply_action, begin_restart
from dime_gym.core.latency import (
    LOG_INVERSE_P99_TARGET,
    MIXTURE_ROWS,
    N_CLASSES,
    P99_QUANTILE,
    class_tail,
    db_io_wait,
    db_response_ms,
    group_class,
    grouped_quantile,
)
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

REPLICA_CLASS = N_NODES  # the replica pool's latency class, after one per node slot (``latency.N_CLASSES``)
N_SCRATCH_ROWS = 6  # per-class arrays of one step: eff, gc_pressure, desired, share, wait_ms, mean_ms


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


@inlined_kernel
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


@inlined_kernel
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


@inlined_kernel
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


@inlined_kernel
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


@inlined_kernel
def count_replicas(s):
    """``(active, ready)``: replica slots in use, and those past their cold start."""
    active_replicas = 0
    ready_replicas = 0
    for r in range(MAX_REPLICAS):
        if s.replica_ttl_left[r] > 0:
            active_replicas += 1
            if s.replica_cold_left[r] == 0:
                ready_replicas += 1
    return active_replicas, ready_replicas


@inlined_kernel
def arrivals(p, s):
    """Offered ingress (base rate x load profile x lognormal noise of mean 1, plus last step's
    retries) and the part the throttle admits; the rest is shed. Returns ``(offered, admitted)``
    in rps and records both (and the shed rate) in ``s``."""
    t = min(s.step, MAX_EPISODE_STEPS - 1)
    sigma = p.arrival_noise_sigma
    noise = math.exp(sigma * next_normal(s.rng, STREAM_DYNAMICS) - 0.5 * sigma * sigma)
    offered = min(MAX_REQUEST_RATE_RPS, p.base_rate_rps * p.load_profile[t] * noise + s.retry_rps)
    admitted = offered * s.throttle_rate
    s.offered_rps = offered
    s.admitted_rps = admitted
    s.shed_rps = offered - admitted
    return offered, admitted


@inlined_kernel
def routing(s, admitted, ready_replicas, eff, failed_rps):
    """Split the admitted traffic over the serving workers (``eff``: effective route weights,
    written here) and the ready replicas. Returns ``(replica_arrival, failed_rps)``: the
    replicas' share in rps, and ``failed_rps`` plus everything admitted when nothing serves."""
    effective_route_weights(s, eff)
    total_weight = ready_replicas * REPLICA_WEIGHT
    for i in range(N_NODES):
        total_weight += eff[i]
    for i in range(N_NODES):
        s.arrival_rps[i] = admitted * eff[i] / total_weight if total_weight > 0.0 else 0.0
    replica_arrival = admitted * ready_replicas * REPLICA_WEIGHT / total_weight if total_weight > 0.0 else 0.0
    if total_weight <= 0.0:
        failed_rps += admitted
    return replica_arrival, failed_rps


@inlined_kernel
def database_capacity(p, s, admitted, active_replicas):
    """The database's capacity this step in request-equivalents/s: nominal x free pool, cut by
    io contention (replicas, split brain) and any scheduled slowdown; 0 while it is down.
    Returns ``(capacity, contention)``."""
    contention = p.replica_io_penalty * active_replicas + split_brain_contention(p, s, admitted)
    db_capacity = p.db_capacity_rps * s.db_pool_free / (1.0 + DB_REPLICATION_CAPACITY_LOSS * contention)
    if p.db_slowdown_start_step >= 0 and p.db_slowdown_start_step <= s.step < p.db_slowdown_start_step + p.db_slowdown_steps:
        db_capacity *= p.db_slowdown_factor
    if not is_serving(s, DB):
        db_capacity = 0.0
    return db_capacity, contention


@inlined_kernel
def database_demand(p, s, replica_arrival, active_replicas, ready_replicas, db_capacity, contention, gc_pressure, desired):
    """What workers and replicas want to serve (``desired``, with each worker's GC pressure in
    ``gc_pressure``), and how much of it the database lets through. Records DB utilisation and
    io_wait in ``s``. Returns ``(demand, total_demand, scale, db_util)``: served requests wanted,
    that plus replica overhead, the fraction the database admits, its utilisation."""
    mu = p.worker_capacity_rps
    demand = 0.0
    for i in range(FIRST_WORKER, N_NODES):
        if is_serving(s, i) and s.zombie[i] == 0:
            # garbage-collection pauses: from GC_PRESSURE_MEM memory, capacity falls and service slows
            gc_pressure[i] = min(1.0, max(0.0, (s.mem[i] - GC_PRESSURE_MEM) / (OOM_THRESHOLD - GC_PRESSURE_MEM)))
            desired[i] = min(s.arrival_rps[i] + s.queue[i] / STEP_SECONDS, mu * (1.0 - GC_CAPACITY_LOSS * gc_pressure[i]))
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
    return demand, total_demand, scale, db_util


@inlined_kernel
def service(p, s, desired, gc_pressure, scale, demand, db_util, ready_replicas, replica_arrival, share, wait_ms,
            mean_ms, failed_rps):
    """Workers and replicas serve their ``desired`` traffic scaled by what the database admits;
    queues grow and overflow, CPU follows utilisation, overload streaks count. Fills each
    latency class's traffic (``share``), queue wait and mean service time. Returns
    ``(in_flight, failed_rps)``: requests in service (rps) and ``failed_rps`` plus the
    requests dropped, zombie-held or wrongly answered."""
    mu = p.worker_capacity_rps
    db_ms = db_response_ms(db_util, s.io_wait)
    in_flight = 0.0
    last_served = last_queue = last_gc_pressure = math.nan
    rho = worker_wait_ms = worker_mean_ms = 0.0
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
        q = s.queue[i] + (s.arrival_rps[i] - served) * STEP_SECONDS
        if q > QUEUE_CAPACITY:
            failed_rps += (q - QUEUE_CAPACITY) / STEP_SECONDS
            q = QUEUE_CAPACITY
        s.queue[i] = max(0.0, q)
        s.served_rps[i] = served
        if served != last_served or s.queue[i] != last_queue or gc_pressure[i] != last_gc_pressure:
            # a worker alike the last one (the common case) reuses its divisions: same bits
            last_served = served
            last_queue = s.queue[i]
            last_gc_pressure = gc_pressure[i]
            mu_i = mu * (1.0 - GC_CAPACITY_LOSS * gc_pressure[i])
            rho = served / mu_i
            worker_wait_ms = min(LATENCY_CAP_MS, MS_PER_SECOND * s.queue[i] / mu_i)
            service_ms = WORKER_SERVICE_MS * (1.0 + GC_SLOWDOWN * gc_pressure[i])
            worker_mean_ms = min(LATENCY_CAP_MS, service_ms / (1.0 - min(rho, UTIL_CEILING)) + db_ms)
        s.cpu[i] = CPU_BACKGROUND + (1.0 - CPU_BACKGROUND) * rho
        if s.split_brain[i] == 1:
            # answers from a diverged primary: fast, but wrong (failed, never good)
            s.cpu[i] = min(1.0, s.cpu[i] + SPLIT_BRAIN_CPU)
            failed_rps += served
        else:
            share[i] = served
            wait_ms[i] = worker_wait_ms
            mean_ms[i] = worker_mean_ms
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
    if is_serving(s, DB):
        s.cpu[DB] = CPU_BACKGROUND + (1.0 - CPU_BACKGROUND) * db_util
        s.served_rps[DB] = demand * scale
    else:
        s.cpu[DB] = 0.0
        s.served_rps[DB] = 0.0
    return in_flight, failed_rps


@inlined_kernel
def latency(p, s, admitted, in_flight, share, wait_ms, mean_ms, failed_rps):
    """The latency mixture of the classes in service: mean, p99, requests served before the
    client timeout and within the SLO. Records them in ``s``; ``share`` becomes fractions.
    Returns ``(served_ok, good, p99, failed_rps)`` (rps, rps, ms; timeouts added to failed)."""
    served_ok = 0.0
    good = 0.0
    latency_mean = 0.0
    if in_flight > 0.0:
        # classes alike in wait and mean (workers alike in queue and load, the common case) form
        # one group: its tails are computed once, and the p99 search evaluates one exp per group
        mixture = stack_zeros(MIXTURE_ROWS, N_CLASSES)
        group_tails = stack_zeros(2, N_CLASSES)  # per group: past the client timeout, past the SLO
        n_active = 0
        n_groups = 0
        start_ms = 0.0
        for k in range(N_CLASSES):
            if share[k] > 0.0:
                w = share[k] / in_flight
                latency_mean += w * min(LATENCY_CAP_MS, wait_ms[k] + mean_ms[k])
                groups_before = n_groups
                group, n_active, n_groups, start_ms = group_class(mixture, n_active, n_groups, w, wait_ms[k],
                                                                  mean_ms[k], LOG_INVERSE_P99_TARGET, start_ms)
                if mean_ms[k] > 0.0:  # real service (zombie classes were counted as failed)
                    if n_groups > groups_before:
                        group_tails[0, group] = class_tail(p.client_timeout_ms, wait_ms[k], mean_ms[k])
                        group_tails[1, group] = class_tail(p.slo_p99_ms, wait_ms[k], mean_ms[k])
                    timed_out = share[k] * group_tails[0, group]
                    served_ok += share[k] - timed_out
                    failed_rps += timed_out
                    good += share[k] * (1.0 - group_tails[1, group])
                share[k] = w
        p99 = grouped_quantile(P99_QUANTILE, mixture, n_active, n_groups, start_ms)
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
    return served_ok, good, p99, failed_rps


@inlined_kernel
def failures(p, s, db_util, total_demand, db_capacity, failed_rps):
    """Memory relaxes towards its load-driven target plus leaks; nodes die on OOM or sustained
    overload, the database on pool exhaustion or sustained saturation. Returns ``failed_rps``
    plus the queued requests lost with crashed nodes."""
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
            failed_rps += fail_node(s, i, EVENT_OOM_KILLED) / STEP_SECONDS
        elif i != DB and s.overload_streak[i] >= OVERLOAD_STEPS_TO_CRASH:
            failed_rps += fail_node(s, i, EVENT_OVERLOAD_CRASH) / STEP_SECONDS
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
    return failed_rps


@inlined_kernel
def retries_and_error_budget(p, s, offered, admitted, failed_rps):
    """Failed requests come back as next step's retries; shed and failed traffic burn the SLO
    error budget, which refills a little every step."""
    failed_rps = min(failed_rps, admitted)
    s.failed_rps = failed_rps
    s.retry_rps = min(MAX_REQUEST_RATE_RPS, p.retry_gain * failed_rps)
    bad_fraction = (s.shed_rps + failed_rps) / offered if offered > 0.0 else 0.0
    s.error_budget = min(ERROR_BUDGET_MAX, max(0.0, s.error_budget + ERROR_BUDGET_REFILL - ERROR_BUDGET_BURN * bad_fraction))


@inlined_kernel
def tally_grader(p, s, offered, good, served_ok, p99, friction):
    """Add this step to the episode tallies the graders read (``core.grading``)."""
    s.sum_offered += offered
    s.sum_good += good
    if is_serving(s, DB):
        s.steps_db_up += 1
        # the SLO holds while traffic is served fast and its error budget is not spent
        if served_ok > 0.0 and p99 <= p.slo_p99_ms and s.error_budget > 0.0:
            s.steps_slo_met += 1
    s.friction_total += friction


@kernel
def step_cluster(p, s, action):
    """Advance one cluster by one step, in place: the physics phases in order (module
    docstring), then the reward and the grader's tallies, which only read the physics.

    Args:
        p: ``PARAMS_DTYPE`` record of the cluster's task.
        s: ``STATE_DTYPE`` record, updated in place (reward in ``s.reward``).
        action: ``(4,) int64`` action vector, already range-checked.
    """
    tick_timers(p, s)  # restarts complete, kubelet restarts crashed pods, cooldowns, replica life
    errors, friction = apply_action(p, s, action)
    fire_scheduled_faults(p, s)
    active_replicas, ready_replicas = count_replicas(s)
    offered, admitted = arrivals(p, s)
    # per-step scratch in this kernel's stack frame: no heap allocation, no reference counting
    scratch = stack_zeros(N_SCRATCH_ROWS, N_CLASSES)
    eff, gc_pressure, desired, share, wait_ms, mean_ms = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4], scratch[5]
    replica_arrival, failed_rps = routing(s, admitted, ready_replicas, eff, 0.0)
    db_capacity, contention = database_capacity(p, s, admitted, active_replicas)
    demand, total_demand, scale, db_util = database_demand(p, s, replica_arrival, active_replicas, ready_replicas,
                                                           db_capacity, contention, gc_pressure, desired)
    in_flight, failed_rps = service(p, s, desired, gc_pressure, scale, demand, db_util, ready_replicas, replica_arrival,
                                    share, wait_ms, mean_ms, failed_rps)
    served_ok, good, p99, failed_rps = latency(p, s, admitted, in_flight, share, wait_ms, mean_ms, failed_rps)
    failed_rps = failures(p, s, db_util, total_demand, db_capacity, failed_rps)
    retries_and_error_budget(p, s, offered, admitted, failed_rps)
    update_dropout(p, s)  # telemetry
    # --- outside the physics: what the step earned, and the episode's tallies ---------------
    compute_reward(p, s, friction, active_replicas)
    tally_grader(p, s, offered, good, served_ok, p99, friction)
    s.step += 1


@kernel
def step_batch_serial(params, states, actions):
    """Step every cluster of a batch with its own action, in order (small batches)."""
    actions = borrowed(actions)  # no reference counting per cluster (``_jit.borrowed``)
    for b in range(states.shape[0]):
        step_cluster(params[b], states[b], actions[b])


@parallel_kernel
def step_batch_parallel(params, states, actions):
    """Step every cluster of a batch with its own action, spread over cores (large batches)."""
    actions = borrowed(actions)  # no reference counting per cluster, contended by the threads
    for b in prange(states.shape[0]):
        step_cluster(params[b], states[b], actions[b])
