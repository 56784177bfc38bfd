"""The episode grader as kernels: one formula for all tasks, read from the state's tallies.

    score = goodput x (0.6 + 0.2 x availability + 0.2 x slo) x (1 - 0.5 x resource_cost)

``grade_terms`` computes the four terms, ``episode_score`` combines them, and ``grade_batch``
reports both for an array of records; ``dime_gym.scenarios.graders`` documents the terms and
serves them to Python. The single env, the batched env, the graders and the evaluation reports
therefore share one compiled formula and agree bit for bit.
"""

from __future__ import annotations

from types import MappingProxyType

from dime_gym.core._jit import kernel

# read-only: the kernel freezes these at compile time, so editing them could not change a score
GRADER_WEIGHTS = MappingProxyType({"base": 0.6, "availability": 0.2, "slo": 0.2, "resource": 0.5})
FRICTION_PER_STEP_BUDGET = 0.1  # friction per step that costs the whole resource factor
GRADE_TERMS = ("goodput", "availability", "slo_attainment", "resource_cost")  # grade_terms' order

_W_BASE = GRADER_WEIGHTS["base"]
_W_AVAILABILITY = GRADER_WEIGHTS["availability"]
_W_SLO = GRADER_WEIGHTS["slo"]
_W_RESOURCE = GRADER_WEIGHTS["resource"]


@kernel
def grade_terms(s):
    """The grader's terms of the episode so far of ``STATE_DTYPE`` record ``s``, each in [0, 1].

    Returns:
        ``(goodput, availability, slo_attainment, resource_cost)`` (``GRADE_TERMS``): requests
        served within the SLO over requests offered; steps with the database serving, and
        steps with the SLO met, over steps; friction over ``FRICTION_PER_STEP_BUDGET`` per
        step, capped at 1. Before the first step nothing has gone wrong yet: 1, 1, 1, 0.
    """
    steps = max(1, s.step)
    started = s.step > 0
    goodput = s.sum_good / max(s.sum_offered, 1e-12) if s.sum_offered > 0 else 1.0
    goodput = min(1.0, max(0.0, goodput))
    availability = s.steps_db_up / steps if started else 1.0
    slo = s.steps_slo_met / steps if started else 1.0
    resource_cost = min(1.0, s.friction_total / (FRICTION_PER_STEP_BUDGET * steps))
    return goodput, availability, slo, resource_cost


@kernel
def episode_score(s):
    """Score in [0, 1] of the episode so far of ``STATE_DTYPE`` record ``s`` (1.0 before the
    first step)."""
    goodput, availability, slo, resource_cost = grade_terms(s)
    quality = goodput * (_W_BASE + _W_AVAILABILITY * availability + _W_SLO * slo)
    return min(1.0, max(0.0, quality * (1.0 - _W_RESOURCE * resource_cost)))


@kernel
def grade_batch(states, scores, terms):
    """For every record of ``states`` (N,): its ``episode_score`` into ``scores`` (N,) float64
    and its ``grade_terms`` into the columns of ``terms`` (4, N) float64 (rows ``GRADE_TERMS``)."""
    for b in range(states.shape[0]):
        s = states[b]
        scores[b] = episode_score(s)
        terms[0, b], terms[1, b], terms[2, b], terms[3, b] = grade_terms(s)
