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

from dime_gym.core.grading import FRICTION_PER_STEP_BUDGET, GRADER_WEIGHTS, score_batch


def grade_components(state) -> dict[str, np.ndarray]:
    """Goodput, availability, SLO attainment and resource cost of (a batch of) states."""
    steps = np.maximum(1, state["step"])
    offered = state["sum_offered"]
    goodput = np.where(offered > 0, state["sum_good"] / np.maximum(offered, 1e-12), 1.0)
    started = state["step"] > 0  # before the first step nothing has gone wrong yet
    availability = np.where(started, state["steps_db_up"] / steps, 1.0)
    slo = np.where(started, state["steps_slo_met"] / steps, 1.0)
    resource_cost = np.minimum(1.0, state["friction_total"] / (FRICTION_PER_STEP_BUDGET * steps))
    return {
        "goodput": np.clip(goodput, 0.0, 1.0),
        "availability": availability,
        "slo_attainment": slo,
        "resource_cost": resource_cost,
    }


def grade(state) -> float | np.ndarray:
    """Score of (a batch of) episodes so far, in [0, 1] (a float for one state); the compiled
    formula of ``dime_gym.core.grading``, the one the environments report."""
    records = np.asarray(state)
    flat = np.ascontiguousarray(records.reshape(-1))
    scores = np.empty(flat.shape[0])
    score_batch(flat, scores)
    return float(scores[0]) if records.ndim == 0 else scores.reshape(records.shape)


__all__ = ["FRICTION_PER_STEP_BUDGET", "GRADER_WEIGHTS", "grade", "grade_components"]
