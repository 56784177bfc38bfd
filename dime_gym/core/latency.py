"""Latency of a mixture of request classes: each class is a fixed wait plus an exponential.

Worker ``k`` serves a share ``w_k`` of requests; a request there waits ``wait_k`` ms in the
queue, then takes an exponential time of mean ``mean_k`` ms (M/M/1-style service stretched
by ``1 / (1 - rho)``). A zombie's requests hang until the client timeout: a point mass,
encoded as ``mean_k == 0`` with ``wait_k`` = the timeout. The cluster p99 is the 0.99
quantile of this mixture, reported on a fixed 2**-20 grid of the latency cap, so one hot or
broken worker drives the tail while the mean looks fine.
"""

from __future__ import annotations

import math

from dime_gym.core._jit import inlined_kernel, kernel, stack_zeros
from dime_gym.core.params import DB_IO_SLOWDOWN, DB_SERVICE_MS, IO_WAIT_FLOOR, IO_WAIT_UTIL_GAIN, UTIL_CEILING
from dime_gym.core.state import LATENCY_CAP_MS, N_NODES


@kernel
def db_io_wait(db_util, contention):
    """Database io_wait in [0, 1]: a floor, quadratic growth with utilisation, plus contention."""
    return min(1.0, IO_WAIT_FLOOR + IO_WAIT_UTIL_GAIN * db_util * db_util + contention)


@kernel
def db_response_ms(db_util, io_wait):
    """Mean database time per request: queueing stretch 1 / (1 - rho), slowed by io_wait."""
    return DB_SERVICE_MS / (1.0 - min(db_util, UTIL_CEILING)) * (1.0 + DB_IO_SLOWDOWN * io_wait)


# A class's exponential tail counts as 0 past this many mean service times (e^-40 < 5e-18, far
# below any share's rounding): the client timeout usually lies hundreds of means out, and this
# spares its exp. The tail stays monotone, and 0 only lowers it, so the bounds below still hold.
NEGLIGIBLE_TAIL_MEANS = 40.0


@kernel
def class_tail(x_ms, wait_ms, mean_ms):
    """P(latency > x) for one class (shifted exponential, or a point mass if mean is 0); 0
    from ``NEGLIGIBLE_TAIL_MEANS`` mean service times past its wait."""
    if x_ms < wait_ms:
        return 1.0
    if mean_ms <= 0.0:
        return 0.0
    means_past = (x_ms - wait_ms) / mean_ms
    return math.exp(-means_past) if means_past < NEGLIGIBLE_TAIL_MEANS else 0.0


@kernel
def mixture_tail(x_ms, share, wait_ms, mean_ms, n):
    """P(latency > x) of the mixture of the first ``n`` classes; shares sum to 1."""
    total = 0.0
    for k in range(n):
        if share[k] > 0.0:
            total += share[k] * class_tail(x_ms, wait_ms[k], mean_ms[k])
    return total


N_CLASSES = N_NODES + 1  # latency classes of a cluster: one per node slot (workers), then the replica pool
P99_QUANTILE = 0.99  # the tail latency every observation reports (steps and resets alike)

# The quantile is reported on a fixed grid of LATENCY_CAP_MS / 2**20 (~0.0095 ms): every grid
# point is exact in binary, so the answer does not depend on how the grid is searched.
QUANTILE_GRID_POINTS = 1 << 20
QUANTILE_STEP_MS = LATENCY_CAP_MS / QUANTILE_GRID_POINTS
NEWTON_PROPOSALS = 6  # then plain bisection, so the search stays O(log) on any input


# A tail bound decides a comparison with the target only when it clears the target by this much
# (relative, plus an absolute floor): far more than the few units in the last place by which the
# summed tail, its terms' exp and its bound can round apart.
PROOF_MARGIN_RELATIVE = 1e-12
PROOF_MARGIN_ABSOLUTE = 1e-15


@inlined_kernel
def _tail_and_slopes(x_ms, share, wait_ms, mean_ms, n, rate):
    """``(tail, slope, inner_slope, jump, curvature)`` of the mixture at the grid point ``x_ms``.

    ``tail`` is ``P(latency > x)`` summed exactly as ``mixture_tail`` sums it, so comparisons
    with it decide the same way. Over the classes in their exponential part at ``x`` (``x >=
    wait``), with ``c`` a class's term and ``r`` its ``rate`` (1 / mean, 0 for a point mass):
    ``slope = sum c r`` (-dP/dx, which steers the search), ``curvature = sum c r^2``, and
    ``inner_slope`` the part of ``slope`` from classes still exponential one grid step lower,
    ``jump`` what the classes whose wait lies in ``(x - d, x]`` lose between ``x - d`` (where
    they count fully) and ``x`` (a point mass there, such as a zombie's timeout, loses its whole
    share). With ``d = QUANTILE_STEP_MS``, since ``1 + a <= exp(a)`` and ``exp(-a) <= 1 - a +
    a^2 / 2`` for ``a >= 0``, they bound the neighbouring grid points' tails:
    ``P(> x - d) >= tail + d * inner_slope + jump`` and ``P(> x + d) <= tail - d * slope + d^2 *
    curvature / 2`` (a class not yet exponential at ``x`` counts fully at ``x`` and at most that
    at ``x + d``)."""
    tail = 0.0
    slope = 0.0
    inner_slope = 0.0
    jump = 0.0
    curvature = 0.0
    below_ms = x_ms - QUANTILE_STEP_MS  # exact: both are grid points
    last_wait_ms = math.nan  # a class alike the last one (same wait and mean) reuses its tail
    last_mean_ms = math.nan
    class_term = 0.0
    for k in range(n):
        if share[k] > 0.0:
            if wait_ms[k] != last_wait_ms or mean_ms[k] != last_mean_ms:
                last_wait_ms = wait_ms[k]
                last_mean_ms = mean_ms[k]
                class_term = class_tail(x_ms, wait_ms[k], mean_ms[k])
            c = share[k] * class_term
            tail += c
            if x_ms >= wait_ms[k]:
                steepness = c * rate[k]
                slope += steepness
                curvature += steepness * rate[k]
                if below_ms >= wait_ms[k]:
                    inner_slope += steepness
                else:
                    jump += share[k] - c
    return tail, slope, inner_slope, jump, curvature


@inlined_kernel
def mixture_quantile(q, share, wait_ms, mean_ms, n):
    """The ``q`` quantile of the mixture of the first ``n`` classes (at most ``N_CLASSES``) on
    the ``QUANTILE_STEP_MS`` grid: the smallest grid point ``x >= QUANTILE_STEP_MS`` with
    ``P(latency > x) <= 1 - q``, or ``LATENCY_CAP_MS`` when even the cap's tail is above
    ``1 - q``.

    This is exactly what bisecting ``[0, LATENCY_CAP_MS]`` down to 0.01 ms returns (20 halvings
    land on this grid), because the tail is monotone. The search keeps a bracket
    ``(lo, hi]`` of grid indices (tail above the target at ``lo``, not at ``hi``) and proposes
    the next point by Newton's method on the log tail (nearly linear for a mixture of
    exponentials), starting from an upper bound. Once a point is evaluated, the bounds of
    ``_tail_and_slopes`` on its neighbours' tails settle the answer without evaluating them
    whenever they clear the target by ``PROOF_MARGIN_*`` (so the result is the same grid point
    as evaluating them would give): about 1.7 tail evaluations per quantile over an episode of
    each task, instead of 21. The ``jump`` term matters most: without it the p99 of a zombie's
    timeout (a point mass, where Newton has no slope to follow) took 19 evaluations, and the
    mean was 2.7.
    """
    target = 1.0 - q
    top = QUANTILE_GRID_POINTS
    # start at an upper bound of the answer: past every class's own 1 - q point the tail is
    # at most the target (one log per call, none per class)
    log_inverse_target = math.log(1.0 / target)
    x0 = 0.0
    rate = stack_zeros(1, N_CLASSES)[0]
    last_mean_ms = math.nan
    last_rate = 0.0
    for k in range(n):
        if share[k] > 0.0:
            x0 = max(x0, wait_ms[k] + mean_ms[k] * log_inverse_target if mean_ms[k] > 0.0 else wait_ms[k])
            if mean_ms[k] != last_mean_ms:
                last_mean_ms = mean_ms[k]
                last_rate = 1.0 / mean_ms[k] if mean_ms[k] > 0.0 else 0.0
            rate[k] = last_rate
    guess = x0 / QUANTILE_STEP_MS
    j = 1 if not guess >= 1.0 else (top if guess >= top else int(math.ceil(guess)))
    lo = 0  # index 0 counts as above the target, as in the bisection
    hi = top + 1  # not yet known
    gallop = 1
    proposals = 0
    margin = PROOF_MARGIN_RELATIVE * target + PROOF_MARGIN_ABSOLUTE
    step = QUANTILE_STEP_MS
    while True:
        tail, slope, inner_slope, jump, curvature = _tail_and_slopes(j * step, share, wait_ms, mean_ms, n, rate)
        if tail > target:
            lo = j
            if lo == top:
                return LATENCY_CAP_MS
            if hi > j + 1 and tail - step * slope + step * step * curvature / 2 < target - margin:
                hi = j + 1  # the next point's tail is provably at or below the target
        else:
            hi = j
            if lo < j - 1 and tail + step * inner_slope + jump > target + margin:
                lo = j - 1  # the previous point's tail is provably above the target
        if hi - lo <= 1:
            return hi * step
        nxt = -1
        if proposals < NEWTON_PROPOSALS and tail > 0.0 and slope > 0.0:
            proposals += 1
            g = (j * step + math.log(tail / target) * tail / slope) / step
            if g <= lo:
                nxt = lo + 1
            elif g >= hi - 1:
                nxt = hi - 1
            elif g == g:
                nxt = int(math.ceil(g))
        if nxt < 0:
            if hi > top:  # no upper end yet: gallop up from lo
                nxt = min(top, lo + gallop)
                gallop *= 2
            else:
                nxt = (lo + hi) // 2
        j = min(top, max(lo + 1, nxt))
