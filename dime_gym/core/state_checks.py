"""Range checks of a ``STATE_DTYPE`` record: what a restored snapshot must satisfy.

The kernels never produce a state outside these ranges; a snapshot is bytes from outside, so
``decode_snapshot`` runs them before anything reads the state. A NaN, an infinity, a negative
queue or an unknown event code would otherwise reach observations (outside the observation
space), the log excerpts (``KeyError``), the renderers and the rewards. One compiled call
checks every field (a few microseconds: the reward function restores snapshots in its hot path);
``STATE_CHECKS`` holds the same tests in NumPy to name the offending entry.
"""

from __future__ import annotations

import math

import numpy as np

from dime_gym.core._jit import kernel
from dime_gym.core.actions import ERR_UNPARSABLE, QUERY_LOGS, UNPARSABLE
from dime_gym.core.params import (
    AUTO_RESTART_BACKOFF_STEPS,
    DB_AUTO_RESTART_BACKOFF_STEPS,
    QUERY_LOGS_VISIBLE_STEPS,
    RESTART_COOLDOWN_STEPS,
    RESTART_STEPS,
    describe_failed_check,
    is_finite_nonneg,
)
from dime_gym.core.state import (
    ERROR_BUDGET_MAX,
    EVENT_NAMES,
    LATENCY_CAP_MS,
    MAX_CLOUD_CREDITS,
    MAX_EPISODE_STEPS,
    MAX_REQUEST_RATE_RPS,
    N_NODES,
    QUEUE_CAPACITY,
)

MAX_AUTO_RESTART_STEPS = max(AUTO_RESTART_BACKOFF_STEPS, DB_AUTO_RESTART_BACKOFF_STEPS)
MAX_EVENT = max(EVENT_NAMES)
MAX_ERROR_BITS = 2 * ERR_UNPARSABLE - 1  # every ERR_* flag set


def _between(lo, hi):
    return lambda v, s, p: (v >= lo) & (v <= hi)


def _finite_nonneg(v, s, p):
    return np.isfinite(v) & (v >= 0)


def _flag(v, s, p):
    return (v == 0) | (v == 1)


def _up_to_step(v, s, p):
    return (v >= 0) & (v <= s["step"])


# (field, what it must be, the same test in NumPy), in the order ``_first_invalid_state`` checks them
STATE_CHECKS = (
    ("cpu", "in [0, 1]", _between(0.0, 1.0)),
    ("mem", "in [0, 1]", _between(0.0, 1.0)),
    ("mem_leaked", "in [0, 1]", _between(0.0, 1.0)),
    ("queue", f"in [0, {QUEUE_CAPACITY:g}]", _between(0.0, QUEUE_CAPACITY)),
    ("route_weight", "finite and >= 0", _finite_nonneg),
    ("arrival_rps", "finite and >= 0", _finite_nonneg),
    ("served_rps", "finite and >= 0", _finite_nonneg),
    ("failed", "0 or 1", _flag),
    ("restart_left", f"in [0, {RESTART_STEPS}]", _between(0, RESTART_STEPS)),
    ("cooldown_left", f"in [0, {RESTART_COOLDOWN_STEPS}]", _between(0, RESTART_COOLDOWN_STEPS)),
    ("auto_restart_left", f"in [0, {MAX_AUTO_RESTART_STEPS}]", _between(0, MAX_AUTO_RESTART_STEPS)),
    ("overload_streak", f"in [0, {MAX_EPISODE_STEPS}]", _between(0, MAX_EPISODE_STEPS)),
    ("zombie", "0 or 1", _flag),
    ("visible_left", f"in [0, {QUERY_LOGS_VISIBLE_STEPS}]", _between(0, QUERY_LOGS_VISIBLE_STEPS)),
    ("dropped", "0 or 1", _flag),
    ("last_event", f"an event code in [0, {MAX_EVENT}]", _between(0, MAX_EVENT)),
    ("replica_cold_left", "in [0, replica_cold_steps]", lambda v, s, p: (v >= 0) & (v <= p["replica_cold_steps"])),
    ("replica_ttl_left", "in [0, replica_ttl_steps]", lambda v, s, p: (v >= 0) & (v <= p["replica_ttl_steps"])),
    ("throttle_rate", "in [0, 1]", _between(0.0, 1.0)),
    ("cloud_credits", f"in [0, {MAX_CLOUD_CREDITS:g}]", _between(0.0, MAX_CLOUD_CREDITS)),
    ("error_budget", f"in [0, {ERROR_BUDGET_MAX:g}]", _between(0.0, ERROR_BUDGET_MAX)),
    ("db_pool_free", "in [0, 1]", _between(0.0, 1.0)),
    ("db_pool_leaking", "0 or 1", _flag),
    ("db_overload_streak", f"in [0, {MAX_EPISODE_STEPS}]", _between(0, MAX_EPISODE_STEPS)),
    ("db_util", "in [0, 1]", _between(0.0, 1.0)),
    ("io_wait", "in [0, 1]", _between(0.0, 1.0)),
    ("offered_rps", f"in [0, {MAX_REQUEST_RATE_RPS:g}]", _between(0.0, MAX_REQUEST_RATE_RPS)),
    ("retry_rps", f"in [0, {MAX_REQUEST_RATE_RPS:g}]", _between(0.0, MAX_REQUEST_RATE_RPS)),
    ("admitted_rps", "finite and >= 0", _finite_nonneg),
    ("shed_rps", "finite and >= 0", _finite_nonneg),
    ("served_total_rps", "finite and >= 0", _finite_nonneg),
    ("good_rps", "finite and >= 0", _finite_nonneg),
    ("failed_rps", "finite and >= 0", _finite_nonneg),
    ("latency_mean_ms", f"in [0, {LATENCY_CAP_MS:g}]", _between(0.0, LATENCY_CAP_MS)),
    ("latency_p99_ms", f"in [0, {LATENCY_CAP_MS:g}]", _between(0.0, LATENCY_CAP_MS)),
    ("action_errors", f"a mask of ERR_* flags in [0, {MAX_ERROR_BITS}]", _between(0, MAX_ERROR_BITS)),
    ("last_action_kind", f"an action kind in [{UNPARSABLE}, {QUERY_LOGS}]", _between(UNPARSABLE, QUERY_LOGS)),
    ("reward_components", "finite", lambda v, s, p: np.isfinite(v)),
    ("reward", "finite", lambda v, s, p: np.isfinite(v)),
    ("sum_offered", "finite and >= 0", _finite_nonneg),
    ("sum_good", "finite and >= 0", _finite_nonneg),
    ("steps_db_up", "in [0, step]", _up_to_step),
    ("steps_slo_met", "in [0, step]", _up_to_step),
    ("friction_total", "finite and >= 0", _finite_nonneg),
    ("credits_spent", "finite and >= 0", _finite_nonneg),
    ("n_actions", "in [0, step]", _up_to_step),
    ("n_invalid_actions", "in [0, step]", _up_to_step),
    ("split_brain", "0 or 1", _flag),
)


@kernel
def _in(x, lo, hi):
    return lo <= x <= hi


@kernel
def _first_invalid_state(params, states):
    """Index into ``STATE_CHECKS`` of the first check that ``states[0]`` fails (with
    ``params[0]``), or -1. NaN fails every range test."""
    p = params[0]
    s = states[0]
    for i in range(N_NODES):
        if not _in(s.cpu[i], 0.0, 1.0):
            return 0
        if not _in(s.mem[i], 0.0, 1.0):
            return 1
        if not _in(s.mem_leaked[i], 0.0, 1.0):
            return 2
        if not _in(s.queue[i], 0.0, QUEUE_CAPACITY):
            return 3
        if not is_finite_nonneg(s.route_weight[i]):
            return 4
        if not is_finite_nonneg(s.arrival_rps[i]):
            return 5
        if not is_finite_nonneg(s.served_rps[i]):
            return 6
        if not _in(s.failed[i], 0, 1):
            return 7
        if not _in(s.restart_left[i], 0, RESTART_STEPS):
            return 8
        if not _in(s.cooldown_left[i], 0, RESTART_COOLDOWN_STEPS):
            return 9
        if not _in(s.auto_restart_left[i], 0, MAX_AUTO_RESTART_STEPS):
            return 10
        if not _in(s.overload_streak[i], 0, MAX_EPISODE_STEPS):
            return 11
        if not _in(s.zombie[i], 0, 1):
            return 12
        if not _in(s.visible_left[i], 0, QUERY_LOGS_VISIBLE_STEPS):
            return 13
        if not _in(s.dropped[i], 0, 1):
            return 14
        if not _in(s.last_event[i], 0, MAX_EVENT):
            return 15
    for r in range(s.replica_ttl_left.shape[0]):
        if not _in(s.replica_cold_left[r], 0, p.replica_cold_steps):
            return 16
        if not _in(s.replica_ttl_left[r], 0, p.replica_ttl_steps):
            return 17
    if not _in(s.throttle_rate, 0.0, 1.0):
        return 18
    if not _in(s.cloud_credits, 0.0, MAX_CLOUD_CREDITS):
        return 19
    if not _in(s.error_budget, 0.0, ERROR_BUDGET_MAX):
        return 20
    if not _in(s.db_pool_free, 0.0, 1.0):
        return 21
    if not _in(s.db_pool_leaking, 0, 1):
        return 22
    if not _in(s.db_overload_streak, 0, MAX_EPISODE_STEPS):
        return 23
    if not _in(s.db_util, 0.0, 1.0):
        return 24
    if not _in(s.io_wait, 0.0, 1.0):
        return 25
    if not _in(s.offered_rps, 0.0, MAX_REQUEST_RATE_RPS):
        return 26
    if not _in(s.retry_rps, 0.0, MAX_REQUEST_RATE_RPS):
        return 27
    if not is_finite_nonneg(s.admitted_rps):
        return 28
    if not is_finite_nonneg(s.shed_rps):
        return 29
    if not is_finite_nonneg(s.served_total_rps):
        return 30
    if not is_finite_nonneg(s.good_rps):
        return 31
    if not is_finite_nonneg(s.failed_rps):
        return 32
    if not _in(s.latency_mean_ms, 0.0, LATENCY_CAP_MS):
        return 33
    if not _in(s.latency_p99_ms, 0.0, LATENCY_CAP_MS):
        return 34
    if not _in(s.action_errors, 0, MAX_ERROR_BITS):
        return 35
    if not _in(s.last_action_kind, UNPARSABLE, QUERY_LOGS):
        return 36
    for k in range(s.reward_components.shape[0]):
        if not math.isfinite(s.reward_components[k]):
            return 37
    if not math.isfinite(s.reward):
        return 38
    if not is_finite_nonneg(s.sum_offered):
        return 39
    if not is_finite_nonneg(s.sum_good):
        return 40
    if not _in(s.steps_db_up, 0, s.step):
        return 41
    if not _in(s.steps_slo_met, 0, s.step):
        return 42
    if not is_finite_nonneg(s.friction_total):
        return 43
    if not is_finite_nonneg(s.credits_spent):
        return 44
    if not _in(s.n_actions, 0, s.step):
        return 45
    if not _in(s.n_invalid_actions, 0, s.step):
        return 46
    for i in range(N_NODES):
        if not _in(s.split_brain[i], 0, 1):
            return 47
    return -1


def validate_state(state: np.ndarray, params: np.ndarray) -> None:
    """Raise ``ValueError`` naming the first field of ``state`` (a ``STATE_DTYPE`` record,
    with its ``PARAMS_DTYPE`` record ``params``) outside the range the kernels keep it in.

    Args:
        state: a 0-d or (1,) ``STATE_DTYPE`` array.
        params: a 0-d or (1,) ``PARAMS_DTYPE`` array (already checked by ``validate_params``).
    """
    states, params1 = state.reshape(1), params.reshape(1)
    failed = _first_invalid_state(params1, states)
    if failed >= 0:
        name, expected, test = STATE_CHECKS[failed]
        s, p = states[0], params1[0]
        raise ValueError(describe_failed_check("state", s, name, expected, lambda v, _: test(v, s, p)))


__all__ = ["STATE_CHECKS", "validate_state"]
