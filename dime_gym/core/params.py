"""Physical constants of the healthy cluster and the default params record.

The design point: at ``BASE_RATE_RPS`` with no fault, workers run near 45 % utilisation and
the database near 35 %; p99 sits well under the SLO. Every task is a deviation from it,
expressed as different values in a ``PARAMS_DTYPE`` record (see ``dime_gym.scenarios``).
Module-level constants here are frozen into compiled kernels.
"""

from __future__ import annotations

import math

import numpy as np

from dime_gym.core._jit import kernel
from dime_gym.core.state import LATENCY_CAP_MS, MAX_CLOUD_CREDITS, MAX_EPISODE_STEPS, N_NODES, PARAMS_DTYPE

BASE_RATE_RPS = 100.0
WORKER_CAPACITY_RPS = 32.0  # 100 rps / 7 workers / 32 rps = 45 % utilisation
DB_CAPACITY_RPS = 285.0  # 100 / 285 = 35 % utilisation

CPU_BACKGROUND = 0.05  # idle CPU of a live process
ZOMBIE_CPU = CPU_BACKGROUND + 0.01  # a zombie holds its requests but does no work: idle plus a trace
WORKER_SERVICE_MS = 3.0  # unloaded worker service time
DB_SERVICE_MS = 2.0  # unloaded database time per request
DB_REPLICATION_CAPACITY_LOSS = 3.0  # DB capacity = nominal / (1 + 3 x replication io contention)
IO_WAIT_FLOOR = 0.05  # DB io_wait of an idle database
IO_WAIT_UTIL_GAIN = 0.55  # io_wait = floor + gain x utilisation**2 (+ contention)
DB_IO_SLOWDOWN = 2.0  # DB time per request grows by (1 + 2 x io_wait)
UTIL_CEILING = 0.98  # utilisation cap inside 1 / (1 - rho) so latency stays finite

MEM_BASELINE = 0.25
MEM_DB_BASELINE = 0.35
MEM_RELAX = 0.3  # fraction of the gap to the load-driven target closed per step
MEM_DB_PER_UTIL = 0.3  # DB memory target = MEM_DB_BASELINE + 0.3 x DB utilisation
MEM_PER_BUSY_CPU = 0.35  # worker memory target = MEM_BASELINE + 0.35 x busy CPU (above background)
MEM_PER_QUEUE_FILL = 0.3  # ... + 0.3 x queue fill (queued requests hold buffers)
MEM_AFTER_RESTART = 0.20
OOM_THRESHOLD = 0.98
GC_PRESSURE_MEM = 0.85  # memory where garbage-collection pauses start to bite
GC_CAPACITY_LOSS = 0.6  # worker capacity lost at the OOM line
GC_SLOWDOWN = 20.0  # extra service time (x base) at the OOM line
SPLIT_BRAIN_CPU = 0.35  # extra CPU of a split-brain worker replaying conflicting writes

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


def record_from_bytes(raw: bytes, dtype: np.dtype) -> np.ndarray:
    """A fresh, writable 0-d record of ``dtype`` holding ``raw`` (a record's ``tobytes()``).

    Much faster than ``ndarray.copy()`` of a structured record, which copies field by field:
    episode resets build several records each.
    """
    return np.frombuffer(bytearray(raw), dtype=dtype).reshape(())


def _build_default_params() -> np.ndarray:
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
    p["split_brain_step"] = -np.ones(N_NODES, dtype=np.int64)
    p["mem_leak_per_step"] = np.zeros(N_NODES)
    p["mem_leak_start_step"] = 0
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


_DEFAULT_PARAMS_BYTES = _build_default_params().tobytes()


def default_params() -> np.ndarray:
    """A fresh ``PARAMS_DTYPE`` scalar record of a healthy cluster with no fault."""
    return record_from_bytes(_DEFAULT_PARAMS_BYTES, PARAMS_DTYPE)


def _finite_nonneg(v, p):
    return np.isfinite(v) & (v >= 0)


# (field, what it must be, the same test in NumPy: it finds the entry to name in the message),
# in the order ``_first_invalid_param`` checks them. Snapshots are validated with these too, so
# every float is checked finite: NaN or inf would reach observations and rewards.
PARAM_CHECKS = (
    ("episode_steps", f"in [1, {MAX_EPISODE_STEPS}]", lambda v, p: (v >= 1) & (v <= MAX_EPISODE_STEPS)),
    ("base_rate_rps", "finite and > 0", lambda v, p: np.isfinite(v) & (v > 0)),
    ("load_profile", "finite and >= 0", _finite_nonneg),
    ("worker_capacity_rps", "finite and > 0", lambda v, p: np.isfinite(v) & (v > 0)),
    ("db_capacity_rps", "finite and > 0", lambda v, p: np.isfinite(v) & (v > 0)),
    ("mem_leak_per_step", "finite and >= 0", _finite_nonneg),
    ("retry_gain", "in [0, 10]", lambda v, p: (v >= 0) & (v <= 10)),
    ("slo_p99_ms", "in (0, client_timeout_ms)", lambda v, p: (v > 0) & (v < p["client_timeout_ms"])),
    ("dropout_prob", "in [0, 1]", lambda v, p: (v >= 0) & (v <= 1)),
    ("dropout_recover_prob", "in [0, 1]", lambda v, p: (v >= 0) & (v <= 1)),
    ("replica_ttl_steps", "> replica_cold_steps >= 0", lambda v, p: (v > p["replica_cold_steps"]) & (p["replica_cold_steps"] >= 0)),
    ("arrival_noise_sigma", "finite and >= 0", _finite_nonneg),
    ("crash_step", ">= -1 (-1 = never)", lambda v, p: v >= -1),
    ("crash_loops", "0 or 1", lambda v, p: (v == 0) | (v == 1)),
    ("zombie_step", ">= -1 (-1 = never)", lambda v, p: v >= -1),
    ("pool_leak_start_step", ">= -1 (-1 = never)", lambda v, p: v >= -1),
    ("pool_leak_per_step", "finite and >= 0", _finite_nonneg),
    ("db_slowdown_start_step", ">= -1 (-1 = never)", lambda v, p: v >= -1),
    ("db_slowdown_steps", ">= 0", lambda v, p: v >= 0),
    ("db_slowdown_factor", "finite and >= 0", _finite_nonneg),
    ("replication_io", "finite and >= 0", _finite_nonneg),
    ("replica_io_penalty", "finite and >= 0", _finite_nonneg),
    ("replica_db_overhead", "finite and >= 0", _finite_nonneg),
    ("replica_warmup_db_load", "finite and >= 0", _finite_nonneg),
    ("client_timeout_ms", f"in (slo_p99_ms, {LATENCY_CAP_MS:g}] (latencies are capped there)",
     lambda v, p: (v > p["slo_p99_ms"]) & (v <= LATENCY_CAP_MS)),
    ("initial_cloud_credits", f"in [0, {MAX_CLOUD_CREDITS:g}]", lambda v, p: (v >= 0) & (v <= MAX_CLOUD_CREDITS)),
    ("split_brain_step", ">= -1 (-1 = never)", lambda v, p: v >= -1),
    ("mem_leak_start_step", ">= 0", lambda v, p: v >= 0),
)


@kernel
def is_finite_nonneg(x):
    return math.isfinite(x) and x >= 0


@kernel
def _first_invalid_param(params):
    """Index into ``PARAM_CHECKS`` of the first check that ``params[0]`` fails, or -1."""
    p = params[0]
    if not 1 <= p.episode_steps <= MAX_EPISODE_STEPS:
        return 0
    if not (math.isfinite(p.base_rate_rps) and p.base_rate_rps > 0):
        return 1
    for t in range(MAX_EPISODE_STEPS):
        if not is_finite_nonneg(p.load_profile[t]):
            return 2
    if not (math.isfinite(p.worker_capacity_rps) and p.worker_capacity_rps > 0):
        return 3
    if not (math.isfinite(p.db_capacity_rps) and p.db_capacity_rps > 0):
        return 4
    for i in range(N_NODES):
        if not is_finite_nonneg(p.mem_leak_per_step[i]):
            return 5
    if not 0 <= p.retry_gain <= 10:
        return 6
    if not 0 < p.slo_p99_ms < p.client_timeout_ms:
        return 7
    if not 0 <= p.dropout_prob <= 1:
        return 8
    if not 0 <= p.dropout_recover_prob <= 1:
        return 9
    if not p.replica_ttl_steps > p.replica_cold_steps >= 0:
        return 10
    if not is_finite_nonneg(p.arrival_noise_sigma):
        return 11
    for i in range(N_NODES):
        if not p.crash_step[i] >= -1:
            return 12
        if not (p.crash_loops[i] == 0 or p.crash_loops[i] == 1):
            return 13
        if not p.zombie_step[i] >= -1:
            return 14
    if not p.pool_leak_start_step >= -1:
        return 15
    if not is_finite_nonneg(p.pool_leak_per_step):
        return 16
    if not p.db_slowdown_start_step >= -1:
        return 17
    if not p.db_slowdown_steps >= 0:
        return 18
    if not is_finite_nonneg(p.db_slowdown_factor):
        return 19
    if not is_finite_nonneg(p.replication_io):
        return 20
    if not is_finite_nonneg(p.replica_io_penalty):
        return 21
    if not is_finite_nonneg(p.replica_db_overhead):
        return 22
    if not is_finite_nonneg(p.replica_warmup_db_load):
        return 23
    if not p.client_timeout_ms <= LATENCY_CAP_MS:
        return 24
    if not 0 <= p.initial_cloud_credits <= MAX_CLOUD_CREDITS:
        return 25
    for i in range(N_NODES):
        if not p.split_brain_step[i] >= -1:
            return 26
    if not p.mem_leak_start_step >= 0:
        return 27
    return -1


def describe_failed_check(what: str, record: np.ndarray, name: str, expected: str, test) -> str:
    """``"<what> field 'name' must be <expected>, got <value>"``; a vector field names its
    first entry that fails ``test`` (a NumPy twin of the kernel's check)."""
    value = np.asarray(record[name])
    if value.size == 1:
        shown = repr(value.item())
    else:
        flat = value.reshape(-1)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.asarray(test(flat, record), dtype=bool).reshape(-1))
        shown = f"{flat[bad[0]].item()!r} at index {bad[0]}" if bad.size else np.array2string(flat, threshold=8)
    return f"{what} field {name!r} must be {expected}, got {shown}"


def validate_params(p: np.ndarray) -> None:
    """Raise ``ValueError`` naming the first field of ``p`` (a ``PARAMS_DTYPE`` record)
    outside its physical range (``PARAM_CHECKS``)."""
    failed = _first_invalid_param(np.asarray(p).reshape(1))
    if failed >= 0:
        name, expected, test = PARAM_CHECKS[failed]
        raise ValueError(describe_failed_check("params", np.asarray(p).reshape(()), name, expected, test))
