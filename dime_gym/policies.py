"""Built-in policies. A policy is ``policy(obs, info) -> action``, optionally with
``reset(seed, episode)`` called at the start of each episode; all are deterministic given
that seed.

* ``noop``: never acts.  ``random``: uniform over the action space (seeded).
* ``oracle``: the 10-rule triage oracle.  ``threshold``: a simple reactive baseline.
* ``reference``: the task's scripted kubectl solution (knows the fault: an upper reference).
* ``throttle_all``, ``restart_spam``, ``scale_spam``, ``logs_spam``: degenerate policies the
  graders must rank below doing nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np

from dime_gym.core.actions import ACTION_NVEC, QUERY_LOGS, RESTART, SCALE_UP, THROTTLE
from dime_gym.core.state import DB, FIRST_WORKER, N_NODES
from dime_gym.oracle import oracle_policy

NO_OP_ACTION = np.zeros(4, dtype=np.int64)


class Policy(abc.ABC):
    """Base class: stateless unless ``reset`` is overridden."""

    name = "policy"

    def reset(self, seed: int, episode) -> None:  # noqa: B027 - optional hook
        """Called before each episode with its seed and ``dime_gym.scenarios.Episode``."""

    @abc.abstractmethod
    def __call__(self, obs, info) -> np.ndarray:
        """The action for this observation."""


class FunctionPolicy(Policy):
    """Wrap a stateless ``obs, info -> action`` function."""

    def __init__(self, name: str, fn: Callable):
        self.name = name
        self.fn = fn

    def __call__(self, obs, info):
        return np.asarray(self.fn(obs, info), dtype=np.int64)


class RandomPolicy(Policy):
    """Uniform over ``MultiDiscrete([6, 8, 8, 21])``, seeded per episode."""

    name = "random"

    def reset(self, seed, episode):
        self.rng = np.random.default_rng([int(seed), 7])

    def __call__(self, obs, info):
        return self.rng.integers(0, ACTION_NVEC).astype(np.int64)


class ThresholdPolicy(Policy):
    """A reactive baseline: restart the first failed node, scale when workers run hot, throttle
    to 0.7 when p99 breaks 2x the SLO, release when it recovers, otherwise query a dropped node."""

    name = "threshold"

    def __call__(self, obs, info):
        failed = np.flatnonzero(obs["failed_nodes"])
        if failed.size:
            return np.array([RESTART, failed[0], 0, 0])
        cpu = obs["cpu_loads"][FIRST_WORKER:]
        visible = cpu[cpu >= 0]
        if visible.size and visible.mean() > 0.8 and obs["cloud_budget"][0] >= 1:
            return np.array([SCALE_UP, 0, 0, 0])
        p99 = obs["p99_latency"][0]
        if p99 > 400 and obs["throttle_rate"][0] > 0.7:
            return np.array([THROTTLE, 0, 0, 14])
        if p99 < 150 and obs["throttle_rate"][0] < 1.0:
            return np.array([THROTTLE, 0, 0, 20])
        dropped = np.flatnonzero(obs["cpu_loads"] < 0)
        if dropped.size:
            return np.array([QUERY_LOGS, dropped[0], 0, 0])
        return NO_OP_ACTION.copy()


class ReferencePolicy(Policy):
    """Replays the task's reference kubectl solution for the current episode."""

    name = "reference"

    def reset(self, seed, episode):
        from dime_gym.scenarios import reference_commands
        from dime_gym.text.commands import parse_command

        self.schedule = {step: np.asarray(parse_command(cmd).action, dtype=np.int64) for step, cmd in reference_commands(episode).items()}

    def __call__(self, obs, info):
        return self.schedule.get(int(obs["step"][0]), NO_OP_ACTION).copy()


class CyclingPolicy(Policy):
    """Issue the same kind every step, cycling over target nodes (degenerate baselines)."""

    def __init__(self, name: str, kind: int, nodes: tuple[int, ...] = tuple(range(N_NODES)), level: int = 0):
        self.name = name
        self.kind = kind
        self.nodes = nodes
        self.level = level

    def __call__(self, obs, info):
        node = self.nodes[int(obs["step"][0]) % len(self.nodes)]
        return np.array([self.kind, node, 0, self.level], dtype=np.int64)


def make_policy(name: str) -> Policy:
    """A fresh built-in policy by name; ``ValueError`` listing the names otherwise."""
    factories: dict[str, Callable[[], Policy]] = {
        "noop": lambda: FunctionPolicy("noop", lambda obs, info: NO_OP_ACTION),
        "random": RandomPolicy,
        "oracle": lambda: FunctionPolicy("oracle", lambda obs, info: oracle_policy(obs)),
        "threshold": ThresholdPolicy,
        "reference": ReferencePolicy,
        "throttle_all": lambda: CyclingPolicy("throttle_all", THROTTLE, (DB,), level=0),
        "restart_spam": lambda: CyclingPolicy("restart_spam", RESTART),
        "scale_spam": lambda: CyclingPolicy("scale_spam", SCALE_UP, (DB,)),
        "logs_spam": lambda: CyclingPolicy("logs_spam", QUERY_LOGS),
    }
    if name not in factories:
        raise ValueError(f"unknown policy {name!r}; built-in policies: {', '.join(factories)}")
    return factories[name]()


BUILTIN_POLICIES = ("noop", "random", "oracle", "threshold", "reference", "throttle_all", "restart_spam", "scale_spam", "logs_spam")
DEGENERATE_POLICIES = ("throttle_all", "restart_spam", "scale_spam", "logs_spam")
