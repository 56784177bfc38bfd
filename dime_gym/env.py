"""``DimeEnv``: the Gymnasium shell over an engine of one cluster (``dime_gym.engine``). It
seeds the engine's reset stream, validates input and builds infos; the engine holds the
records, starts episodes and makes the compiled calls.

A step is one compiled call (``core.batch.step_single``: validate, step, observe, score) plus
the views and dicts Gymnasium expects; the triage oracle in ``info`` runs only when read.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dime_gym.actions import (
    ACTION_NVEC,
    UNPARSABLE_ACTION,
    UNPARSABLE_ANSWER,
    describe_errors,
    validate_action,
)
from dime_gym.core.batch import (
    EPISODE_OVER,
    RESULT_ACTION_ERRORS,
    RESULT_LOGS_NODE,
    RESULT_REWARD,
    RESULT_STATUS,
    RESULT_TRUNCATED,
    STEPPED,
)
from dime_gym.engine import Engine
from dime_gym.logs import log_excerpt
from dime_gym.observation import observation_space
from dime_gym.oracle import triage
from dime_gym.scenarios import DEFAULT_TASK, TASK_IDS, TASKS_BY_CODE, get_task
from dime_gym.snapshot import decode_snapshot


# the kernel's signature takes a writeable array: a private copy, never handed out
_UNPARSABLE_ACTION = UNPARSABLE_ACTION.copy()
_INT64 = np.dtype(np.int64)
_ACTION_SHAPE = (4,)


def _info(task, result: tuple, action_errors: list[str]) -> dict:
    """The info dict of a ``step_single`` / ``observe_single`` result for an episode of ``task``
    (one unpacking and literals are the fastest way to build it; a test keeps the reward
    components in ``REWARD_COMPONENTS`` order)."""
    _, _, score, _, _, r_topo, r_shed, r_mem, r_fric, r_lat, r_up, r_eff, _ = result
    return {"task": task.id, "task_hint": task.task_hint,
            "reward_components": {"r_topo": r_topo, "r_shed": r_shed, "r_mem": r_mem, "r_fric": r_fric, "r_lat": r_lat,
                                  "r_up": r_up, "r_eff": r_eff},
            "action_errors": action_errors, "score": score}


class OracleInfo(dict):
    """``info["oracle"]``: the triage oracle's suggestion for the step's observation, the dict
    ``{"action", "command", "rule_id", "rule"}``, computed on first access.

    The ten rules are plain Python and cost many times a whole step, so an agent that never
    reads the oracle does not pay for it. Every read (indexing, iteration, ``len``, ``==``,
    ``repr``, copying, pickling) fills the dict first; it pickles as a plain ``dict``. It reads
    the observation it was given, so modify that observation only after reading the oracle.
    """

    __slots__ = ("_observation",)

    def __init__(self, observation: dict):
        super().__init__()
        self._observation = observation

    def _fill(self) -> None:
        observation = self._observation
        if observation is not None:
            self._observation = None
            d = triage(observation)
            dict.update(self, action=np.asarray(d.action, dtype=np.int64), command=d.command, rule_id=d.rule_id,
                        rule=d.rule_name)

    def __reduce__(self):
        self._fill()
        return (dict, (dict(self.items()),))

    @classmethod
    def _lazy(cls, observation: dict) -> OracleInfo:
        """``OracleInfo(observation)`` without a Python ``__init__`` call (it is made every step)."""
        info = _new_dict(cls)
        info._observation = observation
        return info


_new_dict = dict.__new__


def _filled_first(name: str):
    method = getattr(dict, name)

    def filled(self, *args, **kwargs):
        self._fill()
        return method(self, *args, **kwargs)

    filled.__name__ = name
    filled.__doc__ = method.__doc__
    return filled


for _name in ("__getitem__", "__iter__", "__len__", "__contains__", "__eq__", "__ne__", "__repr__", "__reversed__",
              "__or__", "__ror__", "__ior__", "__setitem__", "__delitem__", "get", "keys", "values", "items", "copy",
              "pop", "popitem", "setdefault", "update", "clear"):
    setattr(OracleInfo, _name, _filled_first(_name))
del _name


def task_pool(task: str | Sequence[str]) -> tuple[str, ...]:
    """The tasks an env draws its episodes from: one id, ``"all"`` (the 14 tasks) or a sequence
    of distinct ids; ``ValueError`` naming the valid ids otherwise."""
    if isinstance(task, str):
        tasks = TASK_IDS if task == "all" else (task,)
    else:
        try:
            tasks = tuple(task)
        except TypeError:
            raise ValueError(f"task must be a task id, 'all' or a sequence of task ids, got {task!r}") from None
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"a task sequence needs distinct task ids, got {task!r}")
    for t in tasks:
        get_task(t)
    return tasks


class DimeEnv(gym.Env):
    """An 8-node cluster under one of 14 failure scenarios, operated by an on-call SRE agent.

    ## Description
    Node 0 is a stateful PostgreSQL database (a single point of failure); nodes 1-7 are
    stateless workers behind a router. Requests arrive at a noisy rate, are throttled, routed
    by weight to serving workers (a down worker's share goes to its ring neighbours), queue,
    and each served request loads the database. CPU is utilisation; latency and p99 come from
    a queueing mixture; overload, OOM, database saturation and pool exhaustion kill nodes, and
    kubelet restarts crashed pods after a crash-loop backoff. Each task (``task=``) injects one
    fault mechanism; see ``dime_gym.TASKS``. One step is 10 s of cluster time.

    ## Action Space
    ``MultiDiscrete([6, 8, 8, 21])`` = ``[kind, node, dest, rate_level]``; fields a kind does
    not use are ignored:

    | kind | action | uses | effect |
    |---|---|---|---|
    | 0 | no_op | | nothing |
    | 1 | restart | node | down for 2 steps, memory and queue cleared; then a 5-step cooldown |
    | 2 | reroute | node, dest | move half of worker ``node``'s routing weight to worker ``dest`` |
    | 3 | scale_up | | one temporary replica: 1 cloud credit, a cold start, a limited life |
    | 4 | throttle | rate_level | admit ``rate_level / 20`` of the ingress from now on |
    | 5 | query_logs | node | the node's telemetry visible for 3 steps; log lines in ``info["logs"]`` |

    Invalid targets (restart a node on cooldown, reroute to a down node, scale without
    credits, ...) do nothing, cost friction and are listed in ``info["action_errors"]``; an
    action outside the space raises ``ValueError``. ``dime_gym.actions.UNPARSABLE_ANSWER``
    stands for an agent answer with no valid command (the text interface sends it): a no-op
    charged as an invalid action.

    ## Observation Space
    A ``Dict`` (keys in this order; ``dime_gym.observation`` derives it from one layout):

    | key | shape | dtype | min | max | meaning |
    |---|---|---|---|---|---|
    | cpu_loads | (8,) | float32 | -1 | 1 | utilisation; 0 while down, -1 = telemetry dropped |
    | mem_utilizations | (8,) | float32 | -1 | 1 | memory fraction; 0 while down, -1 = dropped |
    | queue_lengths | (8,) | float32 | -1 | 600 | queued requests; 0 while down, -1 = dropped |
    | failed_nodes | (8,) | int8 | 0 | 1 | 1 if crashed (node status is never dropped) |
    | restarting_nodes | (8,) | int8 | 0 | 1 | 1 while a restart is in progress |
    | latency_ms | (1,) | float32 | 0 | 10000 | traffic-weighted mean latency, ms |
    | p99_latency | (1,) | float32 | 0 | 10000 | p99 latency of the whole cluster, ms |
    | request_rate | (1,) | float32 | 0 | 5000 | offered ingress incl. client retries, rps |
    | io_wait | (1,) | float32 | 0 | 1 | database io_wait fraction |
    | error_budget | (1,) | float32 | 0 | 100 | SLO error budget left, tokens |
    | cloud_budget | (1,) | float32 | 0 | 20 | cloud credits left for scale-ups |
    | throttle_rate | (1,) | float32 | 0 | 1 | admitted fraction of the ingress |
    | active_replicas | (1,) | float32 | 0 | 4 | temporary replicas alive |
    | step | (1,) | int64 | 0 | 128 | steps taken |

    ## Rewards
    The clipped sum (to [-5, 5]) of seven bounded components, all in
    ``info["reward_components"]``: r_topo [-2, 0.5], r_shed [-1, 0], r_mem [-1, 0],
    r_fric [-0.5, 0], r_lat [-1, 0.5], r_up [0, 1], r_eff [-0.5, 0.5]. About +2.4 when healthy.
    ``info["score"]`` is the task grader's running score in [0, 1] (``dime_gym.scenarios.graders``).

    ## Starting State
    The healthy design point (workers ~45 %, database ~35 % utilised, p99 well under the
    200 ms SLO) with the task's fault scheduled; the seed decides fault timing, targets and all
    noise, so the same seed gives the same episode.

    ## Episode End
    1. Termination: never; ``terminated`` is always False (DIME has no terminal state: even a
       dead database can be restarted).
    2. Truncation: on the step that reaches the task's length (``episode_steps``, 40-60;
       ``env.unwrapped.episode.params["episode_steps"]``), ``truncated`` is True.
    3. Through ``gym.make``, ``TimeLimit`` truncates at ``spec.max_episode_steps`` too: the
       task's length for ``DIME-<task>-v0``, 60 (the longest task) for ``DIME-v0`` and
       ``DIME-multitask-v0``, so it never cuts an episode short.
    After truncation ``step`` raises ``RuntimeError`` until ``reset``.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | task | ``"traffic_spike"`` | a task id; or ``"all"`` or a sequence of ids to draw one task per episode, uniformly, from the reset stream (``info["task"]`` says which; ``DIME-multitask-v0`` registers ``"all"``) |
    | render_mode | ``None`` | ``"ansi"`` (one text line per node) or ``"rgb_array"`` (a ``(240, 416, 3) uint8`` picture, ``dime_gym.render``) |
    | trace_path | ``None`` | a CSV load trace for ``level_5_alibaba_trace`` (default: the bundled one) |
    | with_oracle | ``True`` | add the triage oracle's suggestion as ``info["oracle"]``, computed only when read (``OracleInfo``) |

    ``reset(seed=..., options={"task": ...})`` switches the task for that episode.

    ## Vectorized Environment
    ``gym.make_vec("DIME-v0", num_envs=N, vectorization_mode="vector_entry_point", task=...)``
    gives a ``dime_gym.DimeVectorEnv``: N clusters stepped by one compiled call, one task per
    sub-env (``task=`` takes a list), Gymnasium's ``NEXT_STEP`` autoreset (or ``DISABLED``);
    ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``, and sub-env ``i`` then follows
    ``DimeEnv``'s trajectory for that seed and those actions bit for bit. Its infos carry no
    oracle. ``dime_gym.score_actions`` scores K candidate actions from one ``snapshot()`` in
    one batched call (the GRPO trainer's reward).

    ## Snapshots
    ``snapshot()`` returns the episode as compact, versioned bytes (params, state and RNG
    streams, facts; see ``dime_gym.snapshot``); ``restore(snapshot)`` continues it bit for bit,
    in this env or any other ``DimeEnv``. The reset stream (which seeds *later* episodes) is
    not part of a snapshot.

    ## Seeding
    ``reset(seed=s)`` seeds the env's reset stream (``dime_gym.scenarios.episodes``); every
    episode, this one and the later ones started by ``reset()`` without a seed, takes the
    stream's next draw as its episode seed. ``reset()`` before any seed starts the stream from
    fresh entropy (Gymnasium's ``np_random``).

    ## Version History
    * v0: initial release.

    ## Example
    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import dime_gym
    >>> env = gym.make("DIME-v0", task="retry_storm")
    >>> obs, info = env.reset(seed=0)
    >>> obs["cpu_loads"].shape, obs["cpu_loads"].dtype, info["task"], info["oracle"]["command"]
    ((8,), dtype('float32'), 'retry_storm', 'no_op')
    >>> obs, reward, terminated, truncated, info = env.step(np.array([4, 0, 0, 8]))  # throttle to 0.40
    >>> round(reward, 3), terminated, truncated, round(float(obs["throttle_rate"][0]), 2)
    (1.508, False, False, 0.4)
    >>> round(info["reward_components"]["r_shed"], 2), info["action_errors"]
    (-0.6, [])
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, task: str | Sequence[str] = DEFAULT_TASK, render_mode: str | None = None, trace_path: str | None = None,
                 with_oracle: bool = True):
        self.tasks = task_pool(task)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not supported; valid: None, 'ansi', 'rgb_array'")
        self.task = task if isinstance(task, str) else list(self.tasks)
        self.render_mode = render_mode
        self.with_oracle = with_oracle
        if trace_path is not None and not any("trace_path" in get_task(t).options for t in self.tasks):
            raise ValueError(f"trace_path is only valid for level_5_alibaba_trace, not {task!r}")
        self.observation_space = observation_space()
        self.action_space = spaces.MultiDiscrete(ACTION_NVEC)
        self._engine = Engine([self.tasks[0]], trace_path=trace_path)
        self._task = None  # the current episode's Task (None before reset)
        self._pool_codes = Engine.codes_of(self.tasks)
        self._row = np.ones(1, dtype=np.bool_)

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = dict(options or {})
        task = options.pop("task", None)
        if options:
            raise ValueError(f"unknown reset option(s) {sorted(options)}; valid: 'task'")
        if task is not None:
            get_task(task)  # checked before seeding: a refused reset changes nothing
        engine = self._engine
        load = engine.trace()  # a bad trace file is refused before anything changes
        super().reset(seed=seed)
        if seed is not None:
            engine.reseed((0,), (seed,))
        elif not engine.seeded[0]:
            engine.reseed((0,), (int(self.np_random.integers(0, 2**63)),))
        if task is None:  # a multi-task env draws the episode's task first, from the same stream
            code = self._pool_codes[0] if len(self.tasks) == 1 else self._pool_codes[engine.draw(0) % len(self.tasks)]
        else:
            code = Engine.codes_of((task,))[0]
        engine.restart(self._row, np.array([code]), load=load)
        self._task = TASKS_BY_CODE[int(code)]
        return self._observe_current()

    def step(self, action):
        if action is UNPARSABLE_ANSWER:
            a, allow_unparsable = _UNPARSABLE_ACTION, True
        elif type(action) is np.ndarray and action.dtype is _INT64 and action.shape == _ACTION_SHAPE and action.flags.carray:
            a, allow_unparsable = action, False  # fast path: the kernel range-checks it
        else:  # a fresh C-contiguous writeable copy: one compiled signature for every input
            a, allow_unparsable = np.array(validate_action(action), dtype=np.int64), False
        engine = self._engine
        result, obs = engine.step_one(a, allow_unparsable)
        if result[RESULT_STATUS] != STEPPED:
            self._raise_refused(result[RESULT_STATUS], action)
        errors = result[RESULT_ACTION_ERRORS]
        info = _info(self._task, result, describe_errors(errors, a) if errors else [])
        logs_node = result[RESULT_LOGS_NODE]
        if logs_node >= 0:
            info["logs"] = log_excerpt(engine.states, 0, logs_node)
        if self.with_oracle:
            info["oracle"] = OracleInfo._lazy(obs)
        return obs, result[RESULT_REWARD], False, result[RESULT_TRUNCATED], info

    def _raise_refused(self, status: int, action) -> None:
        """Raise the error for a step the kernel refused (it changed nothing)."""
        if self._task is None:
            raise RuntimeError("call reset() before step()")
        if status == EPISODE_OVER:
            raise RuntimeError(f"the episode ended after {int(self._engine.states[0]['step'])} steps; call reset()")
        validate_action(action)  # raises the ValueError naming the out-of-range field
        raise AssertionError(f"step_single refused {action!r} with status {status}")

    def _observe_current(self):
        """``(obs, info)`` of the current state without stepping (after reset or restore)."""
        result, obs = self._engine.observe_one()
        info = _info(self._task, result, [])
        if self.with_oracle:
            info["oracle"] = OracleInfo._lazy(obs)
        return obs, info

    # -- snapshots -----------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The current episode as snapshot bytes (see ``dime_gym.snapshot``)."""
        if self._task is None:
            raise RuntimeError("call reset() before snapshot()")
        return self._engine.snapshot(0)

    def restore(self, snapshot: bytes):
        """Continue the episode held by ``snapshot`` exactly where it was taken.

        Returns:
            ``(obs, info)`` of the restored state, as from ``reset``.

        Raises:
            ValueError: a truncated, corrupted or incompatible snapshot (nothing changes).
        """
        contents = decode_snapshot(snapshot)
        self._engine.load(contents, 0)
        self._task = get_task(contents.task)
        return self._observe_current()

    def render(self):
        """``"ansi"``: a text picture (one line per node); ``"rgb_array"``: an ``(H, W, 3) uint8``
        picture (``dime_gym.render``); no render mode: ``None``."""
        return self._engine.render(0, self.render_mode)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def episode(self):
        """The current episode's task, params, initial state and facts (``None`` before reset;
        after ``restore`` its state is the snapshot's)."""
        return self._engine.episode(0)

    @property
    def state_record(self) -> np.ndarray:
        """A copy of the current ``STATE_DTYPE`` record (for analysis; never mutate the env's)."""
        return self._engine.states[0].copy()

    @property
    def state_view(self):
        """The live ``STATE_DTYPE`` record, read-only and not copied (cheap per-step logging;
        it changes with the next step, so copy what you keep)."""
        view = self._engine.states.view()  # made per call: a stored view would not survive pickling
        view.flags.writeable = False
        return view[0]
