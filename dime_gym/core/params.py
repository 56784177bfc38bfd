"""Physical constants of the healthy cluster and the default params record.

The design point: at ``BASE_RATE_RPS`` with no fault, workers run near 45 % utilisation and
the database near 35 %; p99 sits well under the SLO. Every task is a deviation from it,
expressed as different values in a ``PARAMS_DTYPE`` record (see ``dime_gym.scenarios``).
Module-level constants here are frozen into compiled kernels.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core.state import MAX_EPISODE_STEPS, N_NODES, PARAMS_DTYPE

BASE_RATE_RPS = 100.0
WORKER_CAPACITY_RPS = 32.0  # 100 rps / 7 workers / 32 rps = 45 % utilisation
DB_CAPACITY_RPS = 285.0  # 100 / 285 = 35 % utilisation

CPU_BACKGROUND = 0.05  # idle CPU of a live process
WORKER_SERVICE_MS = 3.0  # unloaded worker service time
DB_SERVICE_MS = 2.0  # unloaded database time per request
DB_REPLICATION_CAPACITY_LOSS = 3.0  # DB capacity = nominal / (1 + 3 x replication io contention)
UTIL_CEILING = 0.98  # utilisation cap inside 1 / (1 - rho) so latency stays finite

MEM_BASELINE = 0.25
MEM_DB_BASELINE = 0.35
MEM_RELAX = 0.3  # fraction of the gap to the load-driven target closed per step
MEM_AFTER_RESTART = 0.20
OOM_THRESHOLD = 0.98
GC_PRESSURE_MEM = 0.85  # memory where garbage-collection pauses start to bite
GC_CAPACITY_LOSS = 0.6  # worker capacity lost at the OOM line
GC_SLOWDOWN = 20.0  # extra service time (x base) at the OOM line

OVERLOAD_QUEUE_FRACTION = 0.5  # queue over this fraction of capacity at full CPU = saturated
OVERLOAD_STEPS_TO_CRASH = 3
DB_OVERLOAD_STEPS_TO_CRASH = 4
POOL_EXHAUSTED_FRACTION = 0.08  # DB hangs (fails) below this usable pool fraction

RESTART_STEPS = 2
AUTO_RESTART_BACKOFF_STEPS = 12  # kubelet's crash-loop backoff (capped at 5 min) before it restarts a crashed worker
DB_AUTO_RESTART_BACKOFF_STEPS = 15  # the database pod comes back more slowly (crash recovery, WAL replay)
RESTART_COOLDOWN_STEPS = 5
QUERY_LOGS_VISIBLE_STEPS = 3
REROUTE_FRACTION = 0.5  # share of the source's routing weight moved by one reroute
REPLICA_WEIGHT = 1.0  # routing weight of a ready replica (a worker starts at 1.0)

ERROR_BUDGET_REFILL = 0.5  # tokens regained per step
ERROR_BUDGET_BURN = 15.0  # tokens burnt per step at 100 % bad requests

SLO_P99_MS = 200.0
CLIENT_TIMEOUT_MS = 2_000.0
DEFAULT_EPISODE_STEPS = 40
DEFAULT_CLOUD_CREDITS = 6.0


def default_params() -> np.ndarray:
    """A ``PARAMS_DTYPE`` scalar record of a healthy cluster with no fault."""
    p = np.zeros((), dtype=PARAMS_DTYPE)
    p["episode_steps"] = DEFAULT_EPISODE_STEPS
    p["base_rate_rps"] = BASE_RATE_RPS
    p["load_profile"] = np.ones(MAX_EPISODE_STEPS)
    p["arrival_noise_sigma"] = 0.05
    p["worker_capacity_rps"] = WORKER_CAPACITY_RPS
    p["db_capacity_rps"] = DB_CAPACITY_RPS
    p["crash_step"] = -np.ones(N_NODES, dtype=np.int64)
    p["crash_loops"] = np.zeros(N_NODES, dtype=np.int64)
    p["zombie_step"] = -np.ones(N_NODES, dtype=np.int64)
    p["mem_leak_per_step"] = np.zeros(N_NODES)
    p["pool_leak_start_step"] = -1
    p["pool_leak_per_step"] = 0.0
    p["db_slowdown_start_step"] = -1
    p["db_slowdown_steps"] = 0
    p["db_slowdown_factor"] = 1.0
    p["retry_gain"] = 0.0
    p["replication_io"] = 0.0
    p["replica_io_penalty"] = 0.0
    p["replica_db_overhead"] = 0.03
    p["replica_warmup_db_load"] = 0.2
    p["replica_cold_steps"] = 2
    p["replica_ttl_steps"] = 20
    p["client_timeout_ms"] = CLIENT_TIMEOUT_MS
    p["slo_p99_ms"] = SLO_P99_MS
    p["dropout_prob"] = 0.04
    p["dropout_recover_prob"] = 0.35
    p["initial_cloud_credits"] = DEFAULT_CLOUD_CREDITS
    return p


def validate_params(p: np.ndarray) -> None:
    """Raise ``ValueError`` naming the first field of ``p`` outside its physical range."""
    checks = [
        ("episode_steps", 1 <= int(p["episode_steps"]) <= MAX_EPISODE_STEPS, f"in [1, {MAX_EPISODE_STEPS}]"),
        ("base_rate_rps", float(p["base_rate_rps"]) > 0, "> 0"),
        ("load_profile", bool(np.all(np.isfinite(p["load_profile"])) and np.all(p["load_profile"] >= 0)), "finite and >= 0"),
        ("worker_capacity_rps", float(p["worker_capacity_rps"]) > 0, "> 0"),
        ("db_capacity_rps", float(p["db_capacity_rps"]) > 0, "> 0"),
        ("mem_leak_per_step", bool(np.all(p["mem_leak_per_step"] >= 0)), ">= 0"),
        ("retry_gain", 0 <= float(p["retry_gain"]) <= 10, "in [0, 10]"),
        ("slo_p99_ms", 0 < float(p["slo_p99_ms"]) < float(p["client_timeout_ms"]), "in (0, client_timeout_ms)"),
        ("dropout_prob", 0 <= float(p["dropout_prob"]) <= 1, "in [0, 1]"),
        ("dropout_recover_prob", 0 <= float(p["dropout_recover_prob"]) <= 1, "in [0, 1]"),
        ("replica_ttl_steps", int(p["replica_ttl_steps"]) > int(p["replica_cold_steps"]) >= 0, "> replica_cold_steps >= 0"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"params field {name!r} must be {expected}, got {p[name]!r}")


