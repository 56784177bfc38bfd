"""Small, dependency-free statistics for the benchmark: intervals and permutation tests.

* Intervals of a mean are Student-t 95 % intervals (``t975(n - 1)`` standard errors); with
  fewer than two values there is no interval (NaN, shown as "–").
* Rates get Wilson score intervals.
* Significance is a permutation test on the mean difference, two-sided, from a fixed random
  stream so the same inputs always give the same p-value: a sign-flip test when the two runs
  share seeds (paired), a label-permutation test otherwise; both stratified by task when
  several tasks are pooled. Exact enumeration is used when there are at most
  ``EXACT_MAX_PAIRS`` pairs; random draws are made ``CHUNK`` at a time to bound memory.
  ``holm`` adjusts a family of p-values (Holm-Bonferroni).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

Z975 = 1.959963984540054  # the standard normal's 97.5 % quantile
PERMUTATIONS = 20_000
CHUNK = 1_000  # permutations drawn and evaluated at a time
EXACT_MAX_PAIRS = 14
PERMUTATION_SEED = 20_240_601
_LARGE_DF = 1e5  # above this t975 uses the Cornish-Fisher expansion (error < 1e-12)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz; Numerical
    Recipes, 3rd ed., 6.4), converging for ``x < (a + 1) / (a + b + 2)``."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


@functools.lru_cache(maxsize=1024)
def t975(df: float) -> float:
    """The 97.5 % quantile of Student's t with ``df > 0`` degrees of freedom, integer or not
    (Welch); NaN otherwise. Solves ``P(|T| > t) = I_{df/(df+t^2)}(df/2, 1/2) = 0.05`` by
    bisection on ``log x``; very large ``df`` use the Cornish-Fisher expansion."""
    if not df > 0:
        return math.nan
    if df > _LARGE_DF:
        z = Z975
        return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    lo, hi = -745.0, 0.0  # log x; I is increasing in x
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if regularized_incomplete_beta(df / 2, 0.5, math.exp(mid)) < 0.05:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15 * max(1.0, -lo):
            break
    x = math.exp(0.5 * (lo + hi))
    return math.sqrt(df * (1.0 - x) / x)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (Student-t; NaN for fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean()) if x.size else math.nan
    return mean, float(t975(x.size - 1) * standard_error(x)) if x.size >= 2 else math.nan


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean (NaN for fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size >= 2 else math.nan


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a rate."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    z2 = Z975**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z975 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def welch_ci(a: Sequence[float], b: Sequence[float]) -> float:
    """95 % half-width of ``mean(b) - mean(a)`` for independent samples (Welch; NaN unless
    both have at least two values)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if se2 == 0:
        return 0.0
    df = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float(t975(df) * math.sqrt(se2))


def _chunks(total: int = PERMUTATIONS):
    """``(start, stop)`` slices of ``CHUNK`` permutations."""
    for start in range(0, total, CHUNK):
        yield start, min(start + CHUNK, total)


def _sign_flip_null(wd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``|sum(signs * wd)|`` for every sign pattern (exact, ``wd.size <= EXACT_MAX_PAIRS``) or for
    ``PERMUTATIONS`` random ones; a flip is a 1 bit: ``sum(signs * wd) = sum(wd) - 2 bits @ wd``."""
    n, total = wd.size, wd.sum()
    if n <= EXACT_MAX_PAIRS:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return np.abs(total - 2.0 * (bits @ wd))
    null = np.empty(PERMUTATIONS)
    for start, stop in _chunks():
        bits = rng.integers(0, 2, size=(stop - start, n), dtype=np.int8)
        null[start:stop] = np.abs(total - 2.0 * (bits @ wd))
    return null


def paired_permutation_p(diffs_by_task: Sequence[Sequence[float]]) -> float:
    """Two-sided sign-flip p-value of the mean over tasks of the mean paired difference
    (``diffs_by_task[t]`` holds B - A per shared seed of task t)."""
    groups = [np.asarray(d, dtype=np.float64) for d in diffs_by_task if len(d)]
    if not groups:
        return math.nan
    # weight each pair so that the statistic is the mean over tasks of per-task means
    wd = np.concatenate([g / (g.size * len(groups)) for g in groups])
    observed = abs(float(wd.sum()))
    if observed == 0.0:
        return 1.0
    null = _sign_flip_null(wd, np.random.default_rng(PERMUTATION_SEED))
    tol = 1e-12 * max(1.0, observed)
    if wd.size <= EXACT_MAX_PAIRS:
        return float(np.mean(null >= observed - tol))
    return float((np.sum(null >= observed - tol) + 1) / (null.size + 1))


def unpaired_permutation_p(groups_by_task: Sequence[tuple[Sequence[float], Sequence[float]]]) -> float:
    """Two-sided p-value of the mean over tasks of ``mean(b) - mean(a)`` by permuting run labels
    within each task (independent samples, e.g. different seeds)."""
    groups = [(np.asarray(a, float), np.asarray(b, float)) for a, b in groups_by_task if len(a) and len(b)]
    if not groups:
        return math.nan
    observed = abs(float(np.mean([b.mean() - a.mean() for a, b in groups])))
    if observed == 0.0:
        return 1.0
    rng = np.random.default_rng(PERMUTATION_SEED)
    null = np.zeros(PERMUTATIONS)
    for a, b in groups:
        pooled = np.concatenate([a, b])
        for start, stop in _chunks():
            perm = rng.permuted(np.tile(pooled, (stop - start, 1)), axis=1)
            null[start:stop] += perm[:, a.size:].mean(axis=1) - perm[:, : a.size].mean(axis=1)
    null = np.abs(null / len(groups))
    tol = 1e-12 * max(1.0, observed)
    return float((np.sum(null >= observed - tol) + 1) / (PERMUTATIONS + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries are left out of the family)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()
