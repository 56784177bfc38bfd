"""The public action vocabulary of DIME and the checks every shell applies to its input.

An action is ``[kind, node, dest, rate_level]`` in ``MultiDiscrete(ACTION_NVEC)``
(``dime_gym.core.actions`` documents each kind). Besides the six kinds of the action space,
the compiled step accepts kind ``UNPARSABLE`` (-1): an agent answer that held no valid
command, applied as a no-op charged as an invalid action. The single env cannot take -1 from
its action space, so it takes the sentinel ``UNPARSABLE_ANSWER`` instead; the batched APIs
take -1 in a row. Everything that reports such a step calls it ``UNPARSABLE_NAME``.

``validate_action`` and ``validate_action_batch`` turn user input into the contiguous int64
arrays the kernels take, or raise ``ValueError`` naming the offending field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dime_gym.core.actions import (
    ACTION_KINDS,
    ACTION_NVEC,
    ERROR_MESSAGES,
    N_ACTION_KINDS,
    NO_OP,
    QUERY_LOGS,
    RATE_LEVELS,
    REROUTE,
    RESTART,
    SCALE_UP,
    THROTTLE,
    UNPARSABLE,
    UNPARSABLE_NAME,
    describe_errors,
    level_from_rate,
    rate_from_level,
)
from dime_gym.core.batch import first_invalid_action

ACTION_FIELDS = ("kind", "node", "dest", "rate_level")
_FAR_OUTSIDE = 2**62  # any integer beyond this is no action; it also keeps int64 casts exact


class _UnparsableAnswer:
    """Type of ``UNPARSABLE_ANSWER``, the action for an agent answer with no valid command."""

    def __repr__(self) -> str:
        return "UNPARSABLE_ANSWER"

    def __reduce__(self) -> str:  # unpickles to the same singleton
        return "UNPARSABLE_ANSWER"


UNPARSABLE_ANSWER = _UnparsableAnswer()
UNPARSABLE_ACTION = np.array([UNPARSABLE, 0, 0, 0], dtype=np.int64)  # what UNPARSABLE_ANSWER becomes
UNPARSABLE_ACTION.flags.writeable = False


def _as_int64(a: np.ndarray) -> np.ndarray | None:
    """``a`` as int64 if it holds integers (integral floats included), else ``None``; values
    far outside the action space give ``None`` too, rather than wrapping around in the cast."""
    if np.issubdtype(a.dtype, np.bool_):
        return a.astype(np.int64)
    integral = np.issubdtype(a.dtype, np.integer) or (
        np.issubdtype(a.dtype, np.floating) and bool(np.all(np.isfinite(a))) and bool(np.all(a == np.round(a))))
    if not integral or (a.size and (a.max() > _FAR_OUTSIDE or a.min() < -_FAR_OUTSIDE)):
        return None
    return a.astype(np.int64, copy=False)


def validate_action(action: Any) -> np.ndarray:
    """Return ``action`` as a contiguous ``(4,) int64`` array or raise ``ValueError`` that
    names the offending field and its valid range. ``UNPARSABLE_ANSWER`` becomes a fresh
    ``UNPARSABLE_ACTION``."""
    if action is UNPARSABLE_ANSWER:
        return UNPARSABLE_ACTION.copy()
    try:
        a = np.asarray(action)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is a bad action
        raise ValueError(f"action {action!r} is not array-like: {exc}") from None
    a = _as_int64(a) if a.shape == (4,) else None
    if a is None:
        raise ValueError(f"action must be 4 integers [kind, node, dest, rate_level] in MultiDiscrete({ACTION_NVEC.tolist()}), "
                         f"got {action!r}")
    for k, (value, n) in enumerate(zip(a.tolist(), ACTION_NVEC.tolist(), strict=True)):
        if not 0 <= value < n:
            extra = f" ({', '.join(f'{i}={name}' for i, name in enumerate(ACTION_KINDS))})" if k == 0 else ""
            raise ValueError(f"action field {ACTION_FIELDS[k]}={value} is out of range; valid: 0..{n - 1}{extra}")
    return np.ascontiguousarray(a)


def validate_action_batch(actions: Any, n: int | None = None) -> np.ndarray:
    """Return ``actions`` as a C-contiguous ``(n, 4) int64`` array or raise ``ValueError`` that
    names the first offending row and field. Batched APIs accept kind ``UNPARSABLE`` (-1), an
    agent answer that held no valid command (a no-op charged as an invalid action)."""
    if (type(actions) is np.ndarray and actions.dtype == np.int64 and actions.ndim == 2 and actions.shape[1] == 4
            and actions.shape[0] > 0 and (n is None or actions.shape[0] == n)
            and actions.flags.c_contiguous and actions.flags.writeable):
        a = actions  # the common case: only the compiled range check (no conversion, no scans in NumPy)
    else:
        a = _as_int64_batch(actions, n)
    bad = first_invalid_action(a, True)
    if bad >= 0:
        row, field = divmod(bad, 4)
        n_values = int(ACTION_NVEC[field])
        valid = f"{UNPARSABLE} ({UNPARSABLE_NAME}) or 0..{n_values - 1}" if field == 0 else f"0..{n_values - 1}"
        raise ValueError(f"actions[{row}] field {ACTION_FIELDS[field]}={int(a[row, field])} is out of range; valid: {valid}")
    return a


def _as_int64_batch(actions: Any, n: int | None) -> np.ndarray:
    """``actions`` as a C-contiguous writeable ``(n, 4) int64`` array, or ``ValueError``."""
    try:
        a = np.asarray(actions)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is a bad batch
        raise ValueError(f"actions are not array-like: {exc}") from None
    expected = "(N, 4)" if n is None else f"({n}, 4)"
    if a.ndim != 2 or a.shape[1] != 4 or (n is not None and a.shape[0] != n) or a.shape[0] == 0:
        raise ValueError(f"actions must have shape {expected} (rows of [kind, node, dest, rate_level]), got shape {a.shape}")
    as_int = _as_int64(a)
    if as_int is None:
        raise ValueError(f"actions must be integers, not far outside the action space; got dtype {a.dtype}")
    return np.require(as_int, dtype=np.int64, requirements=["C_CONTIGUOUS", "ALIGNED", "WRITEABLE"])


__all__ = [
    "ACTION_FIELDS", "ACTION_KINDS", "ACTION_NVEC", "ERROR_MESSAGES", "N_ACTION_KINDS", "NO_OP", "QUERY_LOGS",
    "RATE_LEVELS", "REROUTE", "RESTART", "SCALE_UP", "THROTTLE", "UNPARSABLE", "UNPARSABLE_ACTION",
    "UNPARSABLE_ANSWER", "UNPARSABLE_NAME", "describe_errors", "level_from_rate", "rate_from_level",
    "validate_action", "validate_action_batch",
]
