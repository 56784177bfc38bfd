"""Latency of a mixture of request classes: each class is a fixed wait plus an exponential.

Worker ``k`` serves a share ``w_k`` of requests; a request there waits ``wait_k`` ms in the
queue, then takes an exponential time of mean ``mean_k`` ms (M/M/1-style service stretched
by ``1 / (1 - rho)``). A zombie's requests hang until the client timeout: a point mass,
encoded as ``mean_k == 0`` with ``wait_k`` = the timeout. The cluster p99 is the 0.99
quantile of this mixture, found by bisection, so one hot or broken worker drives the tail
while the mean looks fine.
"""

from __future__ import annotations

import math

from dime_gym.core._jit import kernel
from dime_gym.core.params import DB_SERVICE_MS, UTIL_CEILING
from dime_gym.core.state import LATENCY_CAP_MS


@kernel
def db_io_wait(db_util, contention):
    """Database io_wait in [0, 1]: a floor, quadratic growth with utilisation, plus contention."""
    return min(1.0, 0.05 + 0.55 * db_util * db_util + contention)


@kernel
def db_response_ms(db_util, io_wait):
    """Mean database time per request: queueing stretch 1 / (1 - rho), slowed by io_wait."""
    return DB_SERVICE_MS / (1.0 - min(db_util, UTIL_CEILING)) * (1.0 + 2.0 * io_wait)


@kernel
def class_tail(x_ms, wait_ms, mean_ms):
    """P(latency > x) for one class (shifted exponential, or a point mass if mean is 0)."""
    if x_ms < wait_ms:
        return 1.0
    if mean_ms <= 0.0:
        return 0.0
    return math.exp(-(x_ms - wait_ms) / mean_ms)


@kernel
def mixture_tail(x_ms, share, wait_ms, mean_ms, n):
    """P(latency > x) of the mixture of the first ``n`` classes; shares sum to 1."""
    total = 0.0
    for k in range(n):
        if share[k] > 0.0:
            total += share[k] * class_tail(x_ms, wait_ms[k], mean_ms[k])
    return total


@kernel
def mixture_quantile(q, share, wait_ms, mean_ms, n):
    """The ``q`` quantile of the mixture (bisection to 0.01 ms), capped at LATENCY_CAP_MS."""
    target = 1.0 - q
    if mixture_tail(LATENCY_CAP_MS, share, wait_ms, mean_ms, n) > target:
        return LATENCY_CAP_MS
    lo = 0.0
    hi = LATENCY_CAP_MS
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        if mixture_tail(mid, share, wait_ms, mean_ms, n) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 0.01:
            break
    return hi
