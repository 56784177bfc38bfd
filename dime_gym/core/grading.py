"""The episode score as a kernel: one formula for all tasks, read from the state's tallies.

    score = goodput x (0.6 + 0.2 x availability + 0.2 x slo) x (1 - 0.5 x resource_cost)

``dime_gym.scenarios.graders`` documents the terms and reports them; the score itself is
computed here so that the single env, the batched env and ``graders.grade`` share one
compiled formula and agree bit for bit.
"""

from __future__ import annotations

from types import MappingProxyType

from dime_gym.core._jit import kernel

# read-only: the kernel freezes these at compile time, so editing them could not change a score
GRADER_WEIGHTS = MappingProxyType({"base": 0.6, "availability": 0.2, "slo": 0.2, "resource": 0.5})
FRICTION_PER_STEP_BUDGET = 0.1  # friction per step that costs the whole resource factor

_W_BASE = GRADER_WEIGHTS["base"]
_W_AVAILABILITY = GRADER_WEIGHTS["availability"]
_W_SLO = GRADER_WEIGHTS["slo"]
_W_RESOURCE = GRADER_WEIGHTS["resource"]


@kernel
def episode_score(s):
    """Score in [0, 1] of the episode so far of ``STATE_DTYPE`` record ``s`` (1.0 before the
    first step: nothing has gone wrong yet)."""
    steps = max(1, s.step)
    started = s.step > 0
    goodput = s.sum_good / max(s.sum_offered, 1e-12) if s.sum_offered > 0 else 1.0
    goodput = min(1.0, max(0.0, goodput))
    availability = s.steps_db_up / steps if started else 1.0
    slo = s.steps_slo_met / steps if started else 1.0
    resource_cost = min(1.0, s.friction_total / (FRICTION_PER_STEP_BUDGET * steps))
    quality = goodput * (_W_BASE + _W_AVAILABILITY * availability + _W_SLO * slo)
    return min(1.0, max(0.0, quality * (1.0 - _W_RESOURCE * resource_cost)))


@kernel
def score_batch(states, out):
    """Write ``episode_score`` of every record of ``states`` (N,) into ``out`` (N,) float64."""
    for b in range(states.shape[0]):
        out[b] = episode_score(states[b])
