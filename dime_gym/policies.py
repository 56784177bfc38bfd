"""Built-in policies. A policy is ``policy(obs, info) -> action``, optionally with
``reset(seed, episode)`` called at the start of each episode; all are deterministic given
that seed.

* ``noop``: never acts.  ``random``: uniform over the action space (seeded).
* ``oracle``: the 10-rule triage oracle.  ``threshold``: a simple reactive baseline.
* ``reference``: the task's scripted kubectl solution (knows the fault: an upper reference).
* ``planner``: full-state lookahead over ``score_actions`` (knows the simulator: an upper reference).
* ``blind_t<pct>_s<k>``: observation-blind probes: throttle to ``pct`` % at step 0 and hold it,
  add ``k`` replicas right after, then never act again (``blind_t100_s0`` is noop). A valid
  benchmark ranks every one of them far below a policy that reads the cluster.
* ``throttle_all``, ``restart_spam``, ``scale_spam``, ``logs_spam``: degenerate policies the
  graders must rank below doing nothing.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable

import numpy as np

from dime_gym.core.actions import (
    ACTION_NVEC,
    NO_OP,
    QUERY_LOGS,
    RATE_LEVELS,
    REROUTE,
    RESTART,
    SCALE_UP,
    THROTTLE,
    level_from_rate,
    rate_from_level,
)
from dime_gym.core.params import SLO_P99_MS
from dime_gym.core.state import DB, FIRST_WORKER, MAX_REPLICAS, N_NODES
from dime_gym.oracle import oracle_policy

NO_OP_ACTION = np.zeros(4, dtype=np.int64)
# ThresholdPolicy's rules of thumb (what a reactive on-call script might use)
THRESHOLD_RULES = {
    "scale_mean_cpu": 0.8,  # scale up when visible workers average more than this
    "throttle_p99_ms": 2.0 * SLO_P99_MS,  # throttle when p99 breaks this ...
    "throttle_rate": 0.7,  # ... to this admitted fraction, unless already at or below it
    "release_p99_ms": 150.0,  # release a throttle once p99 is back under this
}


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
    """A reactive baseline (thresholds in ``THRESHOLD_RULES``): restart the first failed node,
    scale when workers run hot, throttle when p99 breaks 2x the SLO, release when it recovers,
    otherwise query a dropped node."""

    name = "threshold"

    def __call__(self, obs, info):
        failed = np.flatnonzero(obs["failed_nodes"])
        if failed.size:
            return np.array([RESTART, failed[0], 0, 0])
        cpu = obs["cpu_loads"][FIRST_WORKER:]
        visible = cpu[cpu >= 0]
        if visible.size and visible.mean() > THRESHOLD_RULES["scale_mean_cpu"] and obs["cloud_budget"][0] >= 1:
            return np.array([SCALE_UP, 0, 0, 0])
        p99 = obs["p99_latency"][0]
        if p99 > THRESHOLD_RULES["throttle_p99_ms"] and obs["throttle_rate"][0] > THRESHOLD_RULES["throttle_rate"]:
            return np.array([THROTTLE, 0, 0, level_from_rate(THRESHOLD_RULES["throttle_rate"])])
        if p99 < THRESHOLD_RULES["release_p99_ms"] and obs["throttle_rate"][0] < 1.0:
            return np.array([THROTTLE, 0, 0, level_from_rate(1.0)])
        dropped = np.flatnonzero(obs["cpu_loads"] < 0)
        if dropped.size:
            return np.array([QUERY_LOGS, dropped[0], 0, 0])
        return NO_OP_ACTION.copy()


class ReferencePolicy(Policy):
    """Replays the task's reference kubectl solution for the current episode."""

    name = "reference"

    def reset(self, seed, episode):
        from dime_gym.scenarios import reference_commands
        from dime_gym.commands import parse_command

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


class BlindPolicy(Policy):
    """An observation-blind probe: throttle to ``rate_level / 20`` at step 0 (skipped at 20, no
    throttle), then ``scale_ups`` scale-ups on the following steps, then no_op for ever."""

    def __init__(self, rate_level: int, scale_ups: int = 0):
        if not 0 <= rate_level < RATE_LEVELS or not 0 <= scale_ups <= MAX_REPLICAS:
            raise ValueError(f"a blind policy takes rate_level in [0, {RATE_LEVELS - 1}] and scale_ups in [0, {MAX_REPLICAS}], "
                             f"got {rate_level}, {scale_ups}")
        self.name = blind_policy_name(rate_level, scale_ups)
        plan = [] if rate_level == RATE_LEVELS - 1 else [np.array([THROTTLE, 0, 0, rate_level], dtype=np.int64)]
        plan += [np.array([SCALE_UP, 0, 0, 0], dtype=np.int64)] * scale_ups
        self.plan = tuple(plan)

    def __call__(self, obs, info):
        step = int(obs["step"][0])
        return self.plan[step].copy() if step < len(self.plan) else NO_OP_ACTION.copy()


def blind_policy_name(rate_level: int, scale_ups: int) -> str:
    """``blind_t<percent>_s<scale_ups>``, e.g. ``blind_t80_s1``."""
    return f"blind_t{round(100 * rate_from_level(rate_level))}_s{scale_ups}"


BLIND_POLICIES = tuple(blind_policy_name(level, k) for level in range(RATE_LEVELS) for k in range(MAX_REPLICAS + 1))
"""The whole observation-blind family: every throttle level held from step 0 (100 % = none)
crossed with 0-4 scale-ups at the start."""

_BLIND_NAME = re.compile(r"blind_t(\d{1,3})_s(\d)")


def _blind_from_name(name: str) -> BlindPolicy | None:
    match = _BLIND_NAME.fullmatch(name)
    if match is None or int(match[1]) % 5 or int(match[1]) > 100 or int(match[2]) > MAX_REPLICAS:
        return None
    return BlindPolicy(level_from_rate(int(match[1]) / 100), int(match[2]))


# Candidates the planner weighs each step: every distinct valid operation (log queries only
# cost friction without changing the physics, invalid reroutes only cost more).
PLANNER_CANDIDATES = np.array(
    [(NO_OP, 0, 0, 0), (SCALE_UP, 0, 0, 0)]
    + [(RESTART, i, 0, 0) for i in range(N_NODES)]
    + [(REROUTE, a, b, 0) for a in range(FIRST_WORKER, N_NODES) for b in range(FIRST_WORKER, N_NODES) if a != b]
    + [(THROTTLE, 0, 0, level) for level in range(RATE_LEVELS)],
    dtype=np.int64,
)
PLANNER_HORIZON = 6


class PlannerPolicy(Policy):
    """Full-state lookahead: each step, try every candidate from a copy of the true state and
    keep the one whose episode grader score is highest after it and ``horizon`` more steps of
    no_op (a throttle stays in force), ties to the earlier candidate (no_op first).

    It reads the simulator's state and params (the scheduled load and faults included), not the
    observation: like ``reference``, an upper reference that shows the headroom above the
    triage oracle, not an operator a model could imitate from the prompt.
    """

    name = "planner"

    def __init__(self, horizon: int = PLANNER_HORIZON):
        self.horizon = int(horizon)

    def reset(self, seed, episode):
        from dime_gym.snapshot import SnapshotContents

        self.contents = SnapshotContents(task=episode.task.id, params=episode.params.copy(), state=episode.state.copy(),
                                         facts=dict(episode.facts))

    def __call__(self, obs, info):
        from dime_gym.core.batch import BatchOutputs, advance_batch
        from dime_gym.counterfactual import score_actions

        state = self.contents.state
        if int(obs["step"][0]) != int(state["step"]):
            raise RuntimeError(f"the planner's copy is at step {int(state['step'])} but the env at {int(obs['step'][0])}: "
                               "call reset(seed, episode) before each episode and step the env with the planner's actions")
        scores = score_actions(self.contents, PLANNER_CANDIDATES, horizon=self.horizon, continuation="noop").scores
        action = PLANNER_CANDIDATES[int(np.argmax(scores))]
        params, states = self.contents.params.reshape(1), state.reshape(1)
        advance_batch(params, states, action.reshape(1, 4), np.ones(1, dtype=np.bool_),
                      np.full(1, int(params[0]["episode_steps"]), dtype=np.int64), BatchOutputs.allocate(1), False)
        return action.copy()


def make_policy(name: str) -> Policy:
    """A fresh built-in policy by name; ``ValueError`` listing the names otherwise."""
    factories: dict[str, Callable[[], Policy]] = {
        "noop": lambda: FunctionPolicy("noop", lambda obs, info: NO_OP_ACTION),
        "random": RandomPolicy,
        "oracle": lambda: FunctionPolicy("oracle", lambda obs, info: oracle_policy(obs)),
        "threshold": ThresholdPolicy,
        "reference": ReferencePolicy,
        "planner": PlannerPolicy,
        "throttle_all": lambda: CyclingPolicy("throttle_all", THROTTLE, (DB,), level=0),
        "restart_spam": lambda: CyclingPolicy("restart_spam", RESTART),
        "scale_spam": lambda: CyclingPolicy("scale_spam", SCALE_UP, (DB,)),
        "logs_spam": lambda: CyclingPolicy("logs_spam", QUERY_LOGS),
    }
    blind = _blind_from_name(name)
    if blind is not None:
        return blind
    if name not in factories:
        raise ValueError(f"unknown policy {name!r}; built-in policies: {', '.join(factories)}, "
                         "and blind_t<percent>_s<scale-ups> (percent a multiple of 5 up to 100, scale-ups 0-4)")
    return factories[name]()


def is_builtin_policy(name: str) -> bool:
    """Whether ``make_policy(name)`` builds a policy (a named built-in or a blind probe)."""
    return name in BUILTIN_POLICIES or _blind_from_name(name) is not None


BUILTIN_POLICIES = ("noop", "random", "oracle", "threshold", "reference", "planner", "throttle_all", "restart_spam", "scale_spam", "logs_spam")
DEGENERATE_POLICIES = ("throttle_all", "restart_spam", "scale_spam", "logs_spam")
