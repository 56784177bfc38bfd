"""Episode graders: what an SRE is judged by, in [0, 1], from the state's running tallies.

    goodput       = requests served within the SLO latency / requests *offered*
    availability  = steps with the database serving / steps
    slo           = steps with traffic served, DB up, p99 <= SLO and error budget left / steps
    resource_cost = min(1, friction / (0.1 x steps))   (restarts and scale-ups cost most)
    score         = goodput x (0.6 + 0.2 x availability + 0.2 x slo) x (1 - 0.5 x resource_cost)

Goodput is a factor, not a term: shed and failed traffic count against the agent, so
throttling everything scores 0, and no amount of availability or thrift buys it back. The
resource factor makes spamming restarts, scale-ups or log queries cost score even where it
does no physical harm. One formula serves all 14 tasks (no per-task normaliser), and the
running value after any step is the same formula over the steps so far.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core.grading import FRICTION_PER_STEP_BUDGET, GRADE_TERMS, GRADER_WEIGHTS, grade_batch


def _grade(state) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """``(scores (N,), terms (4, N), shape)`` of the records of ``state`` (any shape)."""
    records = np.asarray(state)
    flat = np.ascontiguousarray(records.reshape(-1))
    scores = np.empty(flat.shape[0])
    terms = np.empty((len(GRADE_TERMS), flat.shape[0]))
    grade_batch(flat, scores, terms)
    return scores, terms, records.shape


def grade_components(state) -> dict[str, float | np.ndarray]:
    """Goodput, availability, SLO attainment and resource cost (``GRADE_TERMS``) of a state
    record (floats) or an array of them (arrays of its shape): the compiled terms of the score."""
    _, terms, shape = _grade(state)
    return {name: float(row[0]) if shape == () else row.reshape(shape) for name, row in zip(GRADE_TERMS, terms)}


def grade(state) -> float | np.ndarray:
    """Score of (a batch of) episodes so far, in [0, 1] (a float for one state); the compiled
    formula of ``dime_gym.core.grading``, the one the environments report."""
    scores, _, shape = _grade(state)
    return float(scores[0]) if shape == () else scores.reshape(shape)


__all__ = ["FRICTION_PER_STEP_BUDGET", "GRADER_WEIGHTS", "GRADE_TERMS", "grade", "grade_components"]
