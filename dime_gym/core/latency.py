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
LOG_INVERSE_P99_TARGET = math.log(1.0 / (1.0 - P99_QUANTILE))  # ``group_class``'s argument for the p99

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


# A mixture's classes in service, grouped for the p99 search (``group_class``): classes alike in
# wait and mean (healthy workers with equal load) share one tail, so a tail evaluation costs one
# ``exp`` per group, not per class. Rows of the ``(MIXTURE_ROWS, N_CLASSES)`` scratch:
ACTIVE_SHARE, ACTIVE_GROUP = 0, 1  # per class in service, in class order: its share, its group
GROUP_SHARE, GROUP_WAIT, GROUP_MEAN, GROUP_RATE, GROUP_TERM = 2, 3, 4, 5, 6  # per group; rate 1 / mean (0: point mass)
MIXTURE_ROWS = 7


@inlined_kernel
def group_class(mixture, n_active, n_groups, share, wait_ms, mean_ms, log_inverse_target, start_ms):
    """Add a class in service (``share`` > 0) to ``mixture``, in a new group unless an earlier
    group has its wait and mean. ``start_ms`` is the search's start, an upper bound of the
    quantile: the largest of the groups' own ``1 - q`` points (``log_inverse_target`` is
    ``log(1 / (1 - q))``). Returns ``(group, n_active, n_groups, start_ms)``, updated."""
    group = 0
    while group < n_groups and (mixture[GROUP_WAIT, group] != wait_ms or mixture[GROUP_MEAN, group] != mean_ms):
        group += 1
    if group == n_groups:
        n_groups += 1
        mixture[GROUP_SHARE, group] = 0.0
        mixture[GROUP_WAIT, group] = wait_ms
        mixture[GROUP_MEAN, group] = mean_ms
        mixture[GROUP_RATE, group] = 1.0 / mean_ms if mean_ms > 0.0 else 0.0
        start_ms = max(start_ms, wait_ms + mean_ms * log_inverse_target if mean_ms > 0.0 else wait_ms)
    mixture[GROUP_SHARE, group] += share
    mixture[ACTIVE_SHARE, n_active] = share
    mixture[ACTIVE_GROUP, n_active] = group
    return group, n_active + 1, n_groups, start_ms


@inlined_kernel
def _tail_and_slopes(x_ms, mixture, n_active, n_groups):
    """``(tail, slope, inner_slope, jump, curvature)`` of a grouped mixture (``group_class``) at
    the grid point ``x_ms``.

    ``tail`` is ``P(latency > x)`` summed exactly as ``mixture_tail`` sums it (class by class,
    in class order), so comparisons with it decide the same way. Over the classes in their
    exponential part at ``x`` (``x >= wait``), with ``c`` a class's term and ``r`` its rate
    (1 / mean, 0 for a point mass): ``slope = sum c r`` (-dP/dx, which steers the search),
    ``curvature = sum c r^2``, and ``inner_slope`` the part of ``slope`` from classes still
    exponential one grid step lower, ``jump`` what the classes whose wait lies in ``(x - d, x]``
    lose between ``x - d`` (where they count fully) and ``x`` (a point mass there, such as a
    zombie's timeout, loses its whole share). With ``d = QUANTILE_STEP_MS``, since ``1 + a <=
    exp(a)`` and ``exp(-a) <= 1 - a + a^2 / 2`` for ``a >= 0``, they bound the neighbouring grid
    points' tails: ``P(> x - d) >= tail + d * inner_slope + jump`` and ``P(> x + d) <= tail - d *
    slope + d^2 * curvature / 2`` (a class not yet exponential at ``x`` counts fully at ``x`` and
    at most that at ``x + d``). These four are summed group by group (a group's share times its
    term): they may differ from class-by-class sums in the last bits, which the proof margins
    absorb."""
    slope = 0.0
    inner_slope = 0.0
    jump = 0.0
    curvature = 0.0
    below_ms = x_ms - QUANTILE_STEP_MS  # exact: both are grid points
    for group in range(n_groups):
        wait_ms = mixture[GROUP_WAIT, group]
        term = class_tail(x_ms, wait_ms, mixture[GROUP_MEAN, group])
        mixture[GROUP_TERM, group] = term
        if x_ms >= wait_ms:
            c = mixture[GROUP_SHARE, group] * term
            steepness = c * mixture[GROUP_RATE, group]
            slope += steepness
            curvature += steepness * mixture[GROUP_RATE, group]
            if below_ms >= wait_ms:
                inner_slope += steepness
            else:
                jump += mixture[GROUP_SHARE, group] - c
    tail = 0.0
    for i in range(n_active):
        tail += mixture[ACTIVE_SHARE, i] * mixture[GROUP_TERM, int(mixture[ACTIVE_GROUP, i])]
    return tail, slope, inner_slope, jump, curvature


@inlined_kernel
def mixture_quantile(q, share, wait_ms, mean_ms, n):
    """The ``q`` quantile of the mixture of the first ``n`` classes (at most ``N_CLASSES``) on
    the ``QUANTILE_STEP_MS`` grid: the smallest grid point ``x >= QUANTILE_STEP_MS`` with
    ``P(latency > x) <= 1 - q``, or ``LATENCY_CAP_MS`` when even the cap's tail is above
    ``1 - q``. Groups the classes (``group_classes``), then ``grouped_quantile``."""
    mixture = stack_zeros(MIXTURE_ROWS, N_CLASSES)
    n_active, n_groups, start_ms = group_classes(mixture, share, wait_ms, mean_ms, n, math.log(1.0 / (1.0 - q)))
    return grouped_quantile(q, mixture, n_active, n_groups, start_ms)


@inlined_kernel
def group_classes(mixture, share, wait_ms, mean_ms, n, log_inverse_target):
    """Group the classes in service among the first ``n`` into ``mixture`` (zeroed, ``MIXTURE_ROWS
    x N_CLASSES``), class by class with ``group_class``. Returns ``(n_active, n_groups,
    start_ms)``."""
    n_active = 0
    n_groups = 0
    start_ms = 0.0
    for k in range(n):
        if share[k] > 0.0:
            _, n_active, n_groups, start_ms = group_class(mixture, n_active, n_groups, share[k], wait_ms[k],
                                                          mean_ms[k], log_inverse_target, start_ms)
    return n_active, n_groups, start_ms


@inlined_kernel
def grouped_quantile(q, mixture, n_active, n_groups, start_ms):
    """``mixture_quantile`` of a grouped mixture (``group_class``; ``start_ms`` as it returns).

    This is exactly what bisecting ``[0, LATENCY_CAP_MS]`` down to 0.01 ms returns (20 halvings
    land on this grid), because the tail is monotone. The search keeps a bracket
    ``(lo, hi]`` of grid indices (tail above the target at ``lo``, not at ``hi``) and proposes
    the next point by Newton's method on the log tail (nearly linear for a mixture of
    exponentials), starting from an upper bound. Once a point is evaluated, the bounds of
    ``_tail_and_slopes`` on its neighbours' tails settle the answer without evaluating them
    whenever they clear the target by ``PROOF_MARGIN_*`` (so the result is the same grid point
    as evaluating them would give): about 1.5 tail evaluations per quantile over an episode of
    each task, instead of 21. The ``jump`` term matters most: without it the p99 of a zombie's
    timeout (a point mass, where Newton has no slope to follow) took 19 evaluations, and the
    mean was 2.7.
    """
    target = 1.0 - q
    top = QUANTILE_GRID_POINTS
    guess = start_ms / QUANTILE_STEP_MS
    j = 1 if not guess >= 1.0 else (top if guess >= top else int(math.ceil(guess)))
    lo = 0  # index 0 counts as above the target, as in the bisection
    hi = top + 1  # not yet known
    gallop = 1
    proposals = 0
    margin = PROOF_MARGIN_RELATIVE * target + PROOF_MARGIN_ABSOLUTE
    step = QUANTILE_STEP_MS
    while True:
        tail, slope, inner_slope, jump, curvature = _tail_and_slopes(j * step, mixture, n_active, n_groups)
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
