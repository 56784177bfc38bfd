"""The ranges of DIME's reward callbacks, the metric names they log and the checks of their
settings, shared by the step rewards (``dime_trainer.rewards``) and the episode rewards
(``dime_trainer.episode_rewards``).

They live below both so that ``rewards`` can hand ``rollout: episode`` over to
``episode_rewards`` without the two modules importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

FORMAT_RANGE = (-3.0, 3.0)
VALIDITY_RANGE = (-2.0, 2.0)
ENV_RANGE = (-5.0, 5.0)
TRIAGE_RANGE = (-0.5, 1.0)

# logged through TRL's log_metric and read by the monitor
UNCLOSED_THINK_METRIC = "dime/unclosed_think_frac"
FLAT_ENV_GROUPS_METRIC = "dime/env_flat_group_frac"  # groups whose completions all got one env reward


def clipped(value: float, bounds: tuple[float, float]) -> float:
    """``value`` clipped into ``bounds``; a non-finite value gets the lower bound (the worst)."""
    return min(bounds[1], max(bounds[0], value)) if math.isfinite(value) else bounds[0]


def checked_weights(weights: Sequence, names: Sequence[str], given, where: str = "") -> list[float]:
    """``weights`` as floats, one per reward of ``names``; ``ValueError`` quoting ``given`` (the
    user's value) otherwise. ``where``: appended to the message (e.g. " in episode mode")."""
    weights = [float(w) for w in weights]
    if len(weights) != len(names) or not all(math.isfinite(w) for w in weights):
        raise ValueError(f"reward_weights must be {len(names)} finite numbers for {', '.join(names)}{where}, got {given!r}")
    return weights


def checked_discount(discount: float, name: str) -> float:
    """A reward discount in (0, 1]; ``ValueError`` naming the setting ``name`` otherwise."""
    if not (math.isfinite(discount) and 0.0 < discount <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {discount!r}")
    return float(discount)


def log_flat_groups(log_metric: Callable[[str, float], None], groups: Iterable[Sequence[float]]) -> None:
    """Log ``FLAT_ENV_GROUPS_METRIC``: the share of groups (of two or more completions) whose
    env rewards are all equal, so GRPO learns nothing from the environment there (TRL's
    ``rewards/.../std`` is over the whole batch, not within groups). Nothing if no such group."""
    sized = [group for group in groups if len(group) > 1]
    if sized:
        log_metric(FLAT_ENV_GROUPS_METRIC, sum(max(group) == min(group) for group in sized) / len(sized))
