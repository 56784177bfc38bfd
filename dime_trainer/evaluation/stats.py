"""Small, dependency-free statistics for the benchmark: intervals and permutation tests.

* Intervals of a mean are Student-t 95 % intervals (``t_975(n - 1)`` standard errors).
* Rates get Wilson score intervals.
* Significance is a permutation test on the mean difference, two-sided, from a fixed random
  stream so the same inputs always give the same p-value: a sign-flip test when the two runs
  share seeds (paired), a label-permutation test otherwise; both stratified by task when
  several tasks are pooled. Exact enumeration is used when there are at most
  ``EXACT_MAX_PAIRS`` pairs. ``holm`` adjusts a family of p-values (Holm-Bonferroni).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
Z975 = 1.959964
PERMUTATIONS = 20_000
EXACT_MAX_PAIRS = 14
PERMUTATION_SEED = 20_240_601


def t975(df: float) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (table up to 30, then
    the Cornish-Fisher expansion, accurate to 1e-3)."""
    if not df >= 1:
        return math.inf
    if df <= 30 and float(df).is_integer():
        return _T975[int(df) - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (Student-t; 0 for fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), 0.0
    return float(x.mean()), float(t975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean (0 for fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size >= 2 else 0.0


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
    """95 % half-width of ``mean(b) - mean(a)`` for independent samples (Welch)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va = a.var(ddof=1) / a.size if a.size > 1 else 0.0
    vb = b.var(ddof=1) / b.size if b.size > 1 else 0.0
    se2 = va + vb
    if se2 == 0:
        return 0.0
    denom = (va**2 / (a.size - 1) if a.size > 1 else 0.0) + (vb**2 / (b.size - 1) if b.size > 1 else 0.0)
    df = se2**2 / denom if denom > 0 else 1.0
    return float(t975(df) * math.sqrt(se2))


def _sign_patterns(n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= EXACT_MAX_PAIRS:
        codes = np.arange(2**n)[:, None]
        return 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
    return rng.choice(np.array([-1.0, 1.0]), size=(PERMUTATIONS, n))


def paired_permutation_p(diffs_by_task: Sequence[Sequence[float]]) -> float:
    """Two-sided sign-flip p-value of the mean over tasks of the mean paired difference
    (``diffs_by_task[t]`` holds B - A per shared seed of task t)."""
    groups = [np.asarray(d, dtype=np.float64) for d in diffs_by_task if len(d)]
    if not groups:
        return math.nan
    d = np.concatenate(groups)
    # weight each pair so that the statistic is the mean over tasks of per-task means
    w = np.concatenate([np.full(g.size, 1.0 / (g.size * len(groups))) for g in groups])
    observed = abs(float(w @ d))
    if observed == 0.0:
        return 1.0
    signs = _sign_patterns(d.size, np.random.default_rng(PERMUTATION_SEED))
    null = np.abs(signs @ (w * d))
    tol = 1e-12 * max(1.0, observed)
    if d.size <= EXACT_MAX_PAIRS:
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
        perm = rng.permuted(np.tile(pooled, (PERMUTATIONS, 1)), axis=1)
        null += perm[:, a.size:].mean(axis=1) - perm[:, : a.size].mean(axis=1)
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
