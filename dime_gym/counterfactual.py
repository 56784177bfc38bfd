"""Counterfactual scoring: what each of K candidate actions would earn from one snapshot.

The GRPO trainer's reward primitive. All K candidates start from copies of the same state and
the same random streams (common random numbers), so their rewards differ only because their
actions differ; an action repeated K times earns K identical rewards. Optionally each
candidate is followed for ``horizon`` more steps by a continuation policy, giving an h-step
return. The results equal stepping a ``DimeEnv`` restored from the snapshot, one candidate at
a time (tests check this), but come from one compiled call per step for all K.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from dime_gym.actions import validate_action, validate_action_batch
from dime_gym.core.reward import REWARD_COMPONENTS
from dime_gym.engine import Engine
from dime_gym.oracle import oracle_policy
from dime_gym.snapshot import SnapshotContents, decode_snapshot

CONTINUATIONS = ("noop", "oracle")


@dataclasses.dataclass(frozen=True)
class CounterfactualScores:
    """Scores of K candidate actions from one snapshot.

    Attributes:
        rewards: (K,) float64 reward of the step each candidate action takes.
        reward_components: component name -> (K,) float64, that step's seven components.
        action_errors: (K,) int64 ``ERR_*`` bitmask of each candidate (0 = applied as given).
        returns: (K,) float64 ``rewards + sum_t discount**t * r_t`` over the continuation steps
            ``t = 1..horizon`` (equal to ``rewards`` when ``horizon == 0``).
        scores: (K,) float64 grader score of each episode at the end of its horizon.
        steps: (K,) int64 steps taken (``1 + horizon``, fewer where the episode ended first).
    """

    rewards: np.ndarray
    reward_components: dict[str, np.ndarray]
    action_errors: np.ndarray
    returns: np.ndarray
    scores: np.ndarray
    steps: np.ndarray


def score_actions(
    snapshot: bytes | SnapshotContents,
    actions,
    horizon: int = 0,
    continuation: str | Callable | None = None,
    discount: float = 1.0,
    parallel: bool | None = None,
) -> CounterfactualScores:
    """Score K candidate actions from one snapshot.

    Args:
        snapshot: snapshot bytes (``DimeEnv.snapshot()``) or their ``decode_snapshot`` result.
        actions: (K, 4) integer rows ``[kind, node, dest, rate_level]``; kind -1
            (``UNPARSABLE``) scores an answer with no valid command (a charged no-op).
        horizon: continuation steps after the candidate's own step (0: the one-step reward).
        continuation: who acts after the candidate when ``horizon > 0``: ``"noop"``,
            ``"oracle"`` (the triage oracle, per observation), a policy ``obs -> action`` called
            once per candidate with a single-cluster observation, or a callable with attribute
            ``batched = True`` called once per step with the batched observation (Dict of (K, ...)
            arrays) and returning (K, 4) actions.
        discount: weight ``discount**t`` of the reward ``t`` steps after the candidate's.
        parallel: force the ``prange`` kernel on or off (``None``: by K; small K runs on one core).

    Raises:
        ValueError: a bad snapshot, an out-of-range or malformed action (naming the row and
            field), a snapshot whose episode has already ended, or ``horizon > 0`` without a
            valid continuation.
    """
    contents = snapshot if isinstance(snapshot, SnapshotContents) else decode_snapshot(snapshot)
    a = validate_action_batch(actions)
    horizon = int(horizon)
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    if not np.isfinite(discount):
        raise ValueError(f"discount must be a finite number, got {discount!r}")
    if horizon > 0 and not (callable(continuation) or (isinstance(continuation, str) and continuation in CONTINUATIONS)):
        raise ValueError(f"horizon > 0 needs a continuation policy: one of {CONTINUATIONS} or a callable, got {continuation!r}")
    episode_steps = int(contents.params["episode_steps"])
    if int(contents.state["step"]) >= episode_steps:
        raise ValueError(f"the snapshot's episode has ended (step {int(contents.state['step'])} of {episode_steps}); nothing to score")
    k = a.shape[0]
    engine = Engine.from_snapshot(contents, k)  # K copies: common random numbers
    out = engine.step(a, np.ones(k, dtype=np.bool_), parallel)
    rewards = out.rewards
    components = dict(zip(REWARD_COMPONENTS, out.reward_components.copy()))
    errors = out.action_errors
    returns = rewards.copy()
    steps = np.ones(k, dtype=np.int64)
    active = ~out.truncated
    weight = 1.0
    for _ in range(horizon):
        if not active.any():
            break
        weight *= discount
        next_actions = continuation_actions(continuation, engine.observation(out), k)
        out = engine.step(next_actions, active, parallel)
        returns += weight * out.rewards
        steps += active
        active &= ~out.truncated
    return CounterfactualScores(rewards=rewards, reward_components=components, action_errors=errors, returns=returns,
                                scores=out.scores, steps=steps)


def continuation_actions(continuation, batched_obs: dict[str, np.ndarray], k: int) -> np.ndarray:
    """The continuation policy's (K, 4) int64 actions for a batched observation (a Dict of
    (K, ...) arrays): ``"noop"``, ``"oracle"`` or a policy, as ``score_actions`` takes it.
    Also what plays on after a language model's turns in ``dime-train``'s episode rollouts."""
    if isinstance(continuation, str) and continuation == "noop":
        return np.zeros((k, 4), dtype=np.int64)
    if getattr(continuation, "batched", False):
        return validate_action_batch(continuation(batched_obs), k)
    if isinstance(continuation, str):  # "oracle"
        continuation = oracle_policy
    rows = []
    for b in range(k):
        action = continuation({key: value[b] for key, value in batched_obs.items()})
        try:
            rows.append(validate_action(action))  # also accepts UNPARSABLE_ANSWER
        except ValueError as exc:
            raise ValueError(f"the continuation policy's action for candidate {b} is invalid: {exc}") from None
    return np.stack(rows)


__all__ = ["CONTINUATIONS", "CounterfactualScores", "continuation_actions", "score_actions"]
