"""Memory layout of one cluster: fixed-dtype NumPy records that Numba kernels read and write.

A batch of clusters is a 1-D array of ``STATE_DTYPE`` records plus a parallel array of
``PARAMS_DTYPE`` records; a single environment is a batch of one. Nodes keep their indices
for the whole episode (0 is the database, 1-7 workers); scale-up capacity lives in
``MAX_REPLICAS`` fixed replica slots, so nothing is ever re-indexed.

Units: one step is ``STEP_SECONDS`` of cluster time; rates are requests per second (rps),
queues are requests, latencies milliseconds, CPU/memory/io_wait fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np

N_NODES = 8
DB = 0
FIRST_WORKER = 1
N_WORKERS = N_NODES - 1
MAX_REPLICAS = 4
MAX_EPISODE_STEPS = 128
N_REWARD_COMPONENTS = 7

STEP_SECONDS = 10.0
MS_PER_SECOND = 1000.0
QUEUE_CAPACITY = 600.0  # requests a node can hold before it drops new arrivals
LATENCY_CAP_MS = 10_000.0
MAX_REQUEST_RATE_RPS = 5_000.0
ERROR_BUDGET_MAX = 100.0
MAX_CLOUD_CREDITS = 20.0

PARAMS_DTYPE = np.dtype(
    [
        ("episode_steps", np.int64),  # () steps until truncation
        ("base_rate_rps", np.float64),  # () healthy offered ingress, rps
        ("load_profile", np.float64, (MAX_EPISODE_STEPS,)),  # (T,) multiplier of base rate per step
        ("arrival_noise_sigma", np.float64),  # () lognormal sigma of offered ingress
        ("worker_capacity_rps", np.float64),  # () requests/s one worker or replica can serve
        ("db_capacity_rps", np.float64),  # () request-equivalents/s the database can serve
        ("crash_step", np.int64, (N_NODES,)),  # (N,) step a node crashes by itself, -1 never
        ("crash_loops", np.int64, (N_NODES,)),  # (N,) 1 if a crashed node keeps crashing after kubelet restarts it
        ("zombie_step", np.int64, (N_NODES,)),  # (N,) step a worker turns zombie, -1 never
        ("split_brain_step", np.int64, (N_NODES,)),  # (N,) step a worker starts writing to a diverged primary, -1 never
        ("mem_leak_per_step", np.float64, (N_NODES,)),  # (N,) memory fraction leaked per step
        ("mem_leak_start_step", np.int64),  # () step from which the leaks run
        ("pool_leak_start_step", np.int64),  # () step the DB connection pool starts leaking, -1 never
        ("pool_leak_per_step", np.float64),  # () fraction of the DB pool lost per step
        ("db_slowdown_start_step", np.int64),  # () step a transient DB slowdown starts, -1 never
        ("db_slowdown_steps", np.int64),  # () its duration in steps
        ("db_slowdown_factor", np.float64),  # () DB capacity multiplier during it
        ("retry_gain", np.float64),  # () client retries per timed-out or dropped request
        ("replication_io", np.float64),  # () DB io contention while a split-brain worker serves its full share
        ("replica_io_penalty", np.float64),  # () extra io_wait per active replica (split brain)
        ("replica_db_overhead", np.float64),  # () DB utilisation each ready replica adds (connections)
        ("replica_warmup_db_load", np.float64),  # () DB utilisation each booting replica adds (cache warm-up)
        ("replica_cold_steps", np.int64),  # () steps a new replica boots before serving
        ("replica_ttl_steps", np.int64),  # () steps a replica lives, cold start included
        ("client_timeout_ms", np.float64),  # () clients give up (and may retry) after this
        ("slo_p99_ms", np.float64),  # () p99 latency objective
        ("dropout_prob", np.float64),  # () P(visible node's telemetry drops) per step
        ("dropout_recover_prob", np.float64),  # () P(dropped telemetry comes back) per step
        ("initial_cloud_credits", np.float64),  # () cloud credits at reset (grader normaliser)
    ],
    align=True,
)

STATE_DTYPE = np.dtype(
    [
        ("rng", np.uint64, (2,)),  # (streams,) splitmix64 states: dynamics, telemetry
        ("step", np.int64),  # () completed steps
        # --- nodes -------------------------------------------------------------------------
        ("cpu", np.float64, (N_NODES,)),  # (N,) utilisation incl. background, [0, 1]
        ("mem", np.float64, (N_NODES,)),  # (N,) memory fraction incl. leaked, [0, 1]
        ("mem_leaked", np.float64, (N_NODES,)),  # (N,) leaked memory never reclaimed until restart
        ("queue", np.float64, (N_NODES,)),  # (N,) queued requests, [0, QUEUE_CAPACITY]
        ("route_weight", np.float64, (N_NODES,)),  # (N,) routing weight of each worker (DB: 0)
        ("arrival_rps", np.float64, (N_NODES,)),  # (N,) admitted requests routed to the node
        ("served_rps", np.float64, (N_NODES,)),  # (N,) requests completed by the node
        ("failed", np.int64, (N_NODES,)),  # (N,) 1 if crashed and not restarting
        ("restart_left", np.int64, (N_NODES,)),  # (N,) steps until a restart completes, 0 = none
        ("cooldown_left", np.int64, (N_NODES,)),  # (N,) steps until a restart is allowed again
        ("auto_restart_left", np.int64, (N_NODES,)),  # (N,) crash-loop backoff until kubelet restarts it
        ("overload_streak", np.int64, (N_NODES,)),  # (N,) consecutive saturated steps
        ("zombie", np.int64, (N_NODES,)),  # (N,) 1 if the worker fails what it accepts
        ("split_brain", np.int64, (N_NODES,)),  # (N,) 1 if the worker's writes conflict (replication io on the DB)
        ("visible_left", np.int64, (N_NODES,)),  # (N,) steps of guaranteed telemetry (query_logs)
        ("dropped", np.int64, (N_NODES,)),  # (N,) 1 if the node's telemetry is unavailable
        ("last_event", np.int64, (N_NODES,)),  # (N,) EVENT_* code of the node's latest event
        # --- replicas (temporary scale-up capacity) ------------------------------------------
        ("replica_cold_left", np.int64, (MAX_REPLICAS,)),  # (R,) boot steps left
        ("replica_ttl_left", np.int64, (MAX_REPLICAS,)),  # (R,) life steps left, 0 = free slot
        # --- cluster ------------------------------------------------------------------------
        ("throttle_rate", np.float64),  # () admitted fraction of offered ingress
        ("cloud_credits", np.float64),  # () credits left for scale-ups
        ("error_budget", np.float64),  # () SLO error budget, [0, ERROR_BUDGET_MAX]
        ("db_pool_free", np.float64),  # () usable fraction of the DB connection pool
        ("db_pool_leaking", np.int64),  # () 1 while a pool leak/deadlock is active (DB restart clears)
        ("db_overload_streak", np.int64),  # () consecutive steps of DB demand over capacity
        ("db_util", np.float64),  # () DB demand / effective capacity, capped at 1
        ("io_wait", np.float64),  # () DB io_wait fraction
        ("offered_rps", np.float64),  # () ingress incl. retries, before throttling
        ("retry_rps", np.float64),  # () retries that join next step's ingress
        ("admitted_rps", np.float64),  # () ingress let through by the throttle
        ("shed_rps", np.float64),  # () ingress rejected by the throttle
        ("served_total_rps", np.float64),  # () requests completed successfully
        ("good_rps", np.float64),  # () requests completed within the SLO latency
        ("failed_rps", np.float64),  # () admitted requests dropped, errored or timed out
        ("latency_mean_ms", np.float64),  # () traffic-weighted mean latency
        ("latency_p99_ms", np.float64),  # () p99 latency of the whole cluster
        ("action_errors", np.int64),  # () ERR_* bitmask of the last action
        ("last_action_kind", np.int64),  # () kind of the last action
        ("reward_components", np.float64, (N_REWARD_COMPONENTS,)),  # (7,) last step's components
        ("reward", np.float64),  # () last step's clipped reward
        # --- episode accumulators read by the graders ----------------------------------------
        ("sum_offered", np.float64),  # () requests offered so far
        ("sum_good", np.float64),  # () requests served within SLO so far
        ("steps_db_up", np.int64),  # () steps with the database serving
        ("steps_slo_met", np.int64),  # () steps with traffic served, DB up, p99 <= SLO and error budget left
        ("friction_total", np.float64),  # () summed action friction
        ("credits_spent", np.float64),  # () cloud credits spent
        ("n_actions", np.int64),  # () management actions (not no_op / query_logs)
        ("n_invalid_actions", np.int64),  # () actions rejected as invalid
    ],
    align=True,
)

# Node event codes (``last_event``), used by log excerpts and the ANSI renderer.
EVENT_NONE = 0
EVENT_OOM_KILLED = 1
EVENT_OVERLOAD_CRASH = 2
EVENT_CRASHED = 3
EVENT_RESTARTED = 4
EVENT_ZOMBIE = 5
EVENT_POOL_EXHAUSTED = 6
EVENT_DB_SATURATED = 7
EVENT_RESTARTING = 8
EVENT_SPLIT_BRAIN = 9

EVENT_NAMES = {
    EVENT_NONE: "none",
    EVENT_OOM_KILLED: "oom_killed",
    EVENT_OVERLOAD_CRASH: "overload_crash",
    EVENT_CRASHED: "crashed",
    EVENT_RESTARTED: "restarted",
    EVENT_ZOMBIE: "zombie",
    EVENT_POOL_EXHAUSTED: "pool_exhausted",
    EVENT_DB_SATURATED: "db_saturated",
    EVENT_RESTARTING: "restarting",
    EVENT_SPLIT_BRAIN: "split_brain",
}


def zeroed_records(n: int, dtype: np.dtype) -> np.ndarray:
    """An (n,) zeroed array of ``dtype`` records (zeroed as bytes: ``np.zeros`` of a structured
    dtype takes ~5 us even for a few records)."""
    return np.zeros((n, dtype.itemsize), dtype=np.uint8).view(dtype).reshape(n)


def set_record_rows(records: np.ndarray, rows, record: np.ndarray) -> None:
    """``records[rows] = record`` for one structured record, copied as bytes (NumPy assigns a
    structured value field by field, ~10 us a call for DIME's ~50 fields). ``rows``: a row,
    indices or a slice of the (n,) record array ``records``."""
    records.view(np.uint8).reshape(records.shape[0], -1)[rows] = record.reshape(1).view(np.uint8)


def empty_batch(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed ``(params, states)`` record arrays for ``n`` clusters."""
    return zeroed_records(n, PARAMS_DTYPE), zeroed_records(n, STATE_DTYPE)
