"""``DimeEnv``: the Gymnasium shell around the Numba core. It owns one cluster's records,
validates input, calls the kernels and builds observations and infos; nothing else."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dime_gym.core.actions import ACTION_KINDS, ACTION_NVEC, QUERY_LOGS, UNPARSABLE, describe_errors
from dime_gym.core.dynamics import step_batch_serial
from dime_gym.core.reward import REWARD_COMPONENTS
from dime_gym.core.state import DB, EVENT_NAMES, N_NODES, empty_batch
from dime_gym.logs import log_excerpt
from dime_gym.observation import build_observation, observation_space
from dime_gym.oracle import triage
from dime_gym.scenarios import DEFAULT_TASK, build_episode, get_task
from dime_gym.scenarios.graders import grade


class _UnparsableAnswer:
    """Type of ``UNPARSABLE_ANSWER``, the action for an agent answer with no valid command."""

    def __repr__(self) -> str:
        return "UNPARSABLE_ANSWER"

    def __reduce__(self) -> str:  # unpickles to the same singleton
        return "UNPARSABLE_ANSWER"


UNPARSABLE_ANSWER = _UnparsableAnswer()


def validate_action(action: Any) -> np.ndarray:
    """Return ``action`` as a contiguous ``(4,) int64`` array or raise ``ValueError`` that
    names the offending field and its valid range. ``UNPARSABLE_ANSWER`` becomes the kernel's
    ``UNPARSABLE`` action."""
    if action is UNPARSABLE_ANSWER:
        return np.array([UNPARSABLE, 0, 0, 0], dtype=np.int64)
    try:
        a = np.asarray(action)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is a bad action
        raise ValueError(f"action {action!r} is not array-like: {exc}") from None
    if a.shape != (4,) or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        if a.shape == (4,) and np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ValueError(
                f"action must be 4 integers [kind, node, dest, rate_level] in MultiDiscrete({ACTION_NVEC.tolist()}), "
                f"got {action!r}"
            )
    names = ("kind", "node", "dest", "rate_level")
    for k, (value, n) in enumerate(zip(a.tolist(), ACTION_NVEC.tolist(), strict=True)):
        if not 0 <= value < n:
            extra = f" ({', '.join(f'{i}={name}' for i, name in enumerate(ACTION_KINDS))})" if k == 0 else ""
            raise ValueError(f"action field {names[k]}={value} is out of range; valid: 0..{n - 1}{extra}")
    return np.ascontiguousarray(a, dtype=np.int64)


class DimeEnv(gym.Env):
    """An 8-node cluster under one of 14 failure scenarios, operated by an on-call SRE agent.

    ## Description
    Node 0 is a stateful PostgreSQL database (a single point of failure); nodes 1-7 are
    stateless workers behind a router. Requests arrive at a noisy rate, are throttled, routed
    by weight to serving workers (a down worker's share goes to its ring neighbours), queue,
    and each served request loads the database. CPU is utilisation; latency and p99 come from
    a queueing mixture; overload, OOM, database saturation and pool exhaustion kill nodes.
    Each task (``task=``) injects one fault mechanism; see ``dime_gym.TASKS``.

    ## Action Space
    ``MultiDiscrete([6, 8, 8, 21])`` = ``[kind, node, dest, rate_level]`` with kind
    0 no_op, 1 restart(node), 2 reroute(node -> dest), 3 scale_up, 4 throttle(rate_level/20),
    5 query_logs(node). Unused fields are ignored. Invalid targets do nothing and are listed in
    ``info["action_errors"]``; an action outside the space raises ``ValueError``. The action
    ``dime_gym.env.UNPARSABLE_ANSWER`` stands for an agent answer with no valid command (the
    text interface sends it): a no-op charged as an invalid action.

    ## Observation Space
    A ``Dict``:

    | key | shape | meaning |
    |---|---|---|
    | cpu_loads | (8,) | utilisation in [0, 1]; -1 = telemetry dropped |
    | mem_utilizations | (8,) | memory fraction; -1 = dropped |
    | queue_lengths | (8,) | queued requests; -1 = dropped |
    | failed_nodes | (8,) | 1 if crashed (never dropped) |
    | restarting_nodes | (8,) | 1 while a restart is in progress |
    | latency_ms, p99_latency | (1,) | mean and p99 latency, ms |
    | request_rate | (1,) | offered ingress incl. retries, rps |
    | io_wait | (1,) | database io_wait |
    | error_budget | (1,) | SLO error budget, 0-100 |
    | cloud_budget | (1,) | cloud credits left for scale-ups |
    | throttle_rate | (1,) | admitted fraction of ingress |
    | active_replicas | (1,) | temporary replicas alive |
    | step | (1,) | steps taken |

    ## Rewards
    The clipped sum (to [-5, 5]) of seven bounded components, all in
    ``info["reward_components"]``: r_topo [-2, 0.5], r_shed [-1, 0], r_mem [-1, 0],
    r_fric [-0.5, 0], r_lat [-1, 0.5], r_up [0, 1], r_eff [-0.5, 0.5]. About +2.3 when healthy.

    ## Starting State
    The healthy design point (workers ~45 %, database ~35 % utilised) with the task's fault
    scheduled; the seed decides fault timing, targets and all noise.

    ## Episode End
    Truncated after the task's ``episode_steps`` (40-60). There is no terminal state: a dead
    database can always be restarted. ``info["score"]`` is the task grader's running value.

    ## Arguments
    ``task`` (default ``"traffic_spike"``), ``render_mode`` (``None`` or ``"ansi"``),
    ``trace_path`` (CSV for ``level_5_alibaba_trace``), ``with_oracle`` (add the triage
    oracle's suggestion to ``info``, default True). ``reset(options={"task": ...})`` switches
    the task for that episode.

    ## Version History
    * v0: initial release.

    ## Example
    >>> import gymnasium as gym, dime_gym
    >>> env = gym.make("DIME-v0", task="retry_storm")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, task: str = DEFAULT_TASK, render_mode: str | None = None, trace_path: str | None = None, with_oracle: bool = True):
        get_task(task)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not supported; valid: None, 'ansi'")
        self.task = task
        self.render_mode = render_mode
        self.with_oracle = with_oracle
        self._task_options = {"trace_path": trace_path} if trace_path is not None else {}
        if trace_path is not None and "trace_path" not in get_task(task).options:
            raise ValueError(f"trace_path is only valid for level_5_alibaba_trace, not {task!r}")
        self.observation_space = observation_space()
        self.action_space = spaces.MultiDiscrete(ACTION_NVEC)
        self._params, self._states = empty_batch(1)
        self._episode = None

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        task = options.pop("task", self.task)
        if options:
            raise ValueError(f"unknown reset option(s) {sorted(options)}; valid: 'task'")
        task_options = self._task_options if "trace_path" in get_task(task).options else {}
        episode_seed = int(self.np_random.integers(0, 2**63 - 1))
        self._episode = build_episode(task, episode_seed, **task_options)
        self._params[0] = self._episode.params
        self._states[0] = self._episode.state
        obs = build_observation(self._states[0])
        return obs, self._info(obs, logs=None)

    def step(self, action):
        if self._episode is None:
            raise RuntimeError("call reset() before step()")
        return self._advance(validate_action(action))

    def step_unparsable(self):
        """Advance one step for an agent answer that held no valid command: a no-op charged
        as an invalid action (``ERR_UNPARSABLE``); the same as ``step(UNPARSABLE_ANSWER)``."""
        return self.step(UNPARSABLE_ANSWER)

    def _advance(self, a: np.ndarray):
        s = self._states[0]
        if s["step"] >= self._params[0]["episode_steps"]:
            raise RuntimeError(f"the episode ended after {int(s['step'])} steps; call reset()")
        step_batch_serial(self._params, self._states, a.reshape(1, 4))
        s = self._states[0]
        obs = build_observation(s)
        logs = log_excerpt(s, int(a[1])) if a[0] == QUERY_LOGS else None
        info = self._info(obs, logs=logs, action=a)
        truncated = bool(s["step"] >= self._params[0]["episode_steps"])
        return obs, float(s["reward"]), False, truncated, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        return render_ansi(self._states[0], self._episode.task.id if self._episode else self.task)

    # -- helpers ------------------------------------------------------------------------------
    def _info(self, obs, logs, action=None) -> dict:
        s = self._states[0]
        info = {
            "task": self._episode.task.id,
            "task_hint": self._episode.task.task_hint,
            "reward_components": dict(zip(REWARD_COMPONENTS, (float(x) for x in s["reward_components"]), strict=True)),
            "action_errors": describe_errors(int(s["action_errors"]), action) if action is not None else [],
            "score": grade(s),
        }
        if logs is not None:
            info["logs"] = logs
        if self.with_oracle:
            d = triage(obs)
            info["oracle"] = {"action": np.asarray(d.action, dtype=np.int64), "command": d.command, "rule_id": d.rule_id, "rule": d.rule_name}
        return info

    @property
    def episode(self):
        """The current episode's task, params, initial state and facts (``None`` before reset)."""
        return self._episode

    @property
    def state_record(self) -> np.ndarray:
        """A copy of the current ``STATE_DTYPE`` record (for analysis; never mutate the env's)."""
        return self._states[0].copy()


def render_ansi(s, task: str) -> str:
    """A text picture of the cluster: one row per node, then the cluster line."""
    rows = [f"DIME {task} step {int(s['step'])}  p99 {s['latency_p99_ms']:.0f} ms  offered {s['offered_rps']:.0f} rps  "
            f"throttle {s['throttle_rate']:.2f}  budget {s['error_budget']:.0f}  credits {s['cloud_credits']:.0f}"]
    for i in range(N_NODES):
        status = "FAILED" if s["failed"][i] else ("restart" if s["restart_left"][i] else "up")
        bar = "#" * int(round(10 * s["cpu"][i]))
        role = "db" if i == DB else "w "
        rows.append(f" node-{i} {role} {status:8s} cpu {s['cpu'][i]:.2f} |{bar:<10s}| mem {s['mem'][i]:.2f} "
                    f"queue {s['queue'][i]:5.0f} {EVENT_NAMES[int(s['last_event'][i])]}")
    return "\n".join(rows) + "\n"
