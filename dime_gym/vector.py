"""``DimeVectorEnv``: N DIME clusters stepped by one compiled call per ``step``: the Gymnasium
shell over an engine of N (``dime_gym.engine``) that adds per-sub-env seeding and autoreset.

Registered as the ``vector_entry_point`` of ``DIME-v0``::

    envs = gym.make_vec("DIME-v0", num_envs=1024, vectorization_mode="vector_entry_point",
                        task=["retry_storm", "zombie_node"] * 512)

Sub-env ``i`` follows exactly the trajectory of ``DimeEnv`` with the same task, seed and
actions (the same kernels; tests compare it with Gymnasium's ``SyncVectorEnv`` bit for bit).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence

import numpy as np
from gymnasium import error as gym_error
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dime_gym.actions import validate_action_batch
from dime_gym.core.actions import ACTION_NVEC
from dime_gym.core.batch import PARALLEL_MIN_BATCH, BatchOutputs
from dime_gym.core.reward import REWARD_COMPONENTS
from dime_gym.core.state import MAX_EPISODE_STEPS
from dime_gym.engine import Engine, KernelChooser
from dime_gym.observation import observation_space
from dime_gym.scenarios import DEFAULT_TASK, get_task
from dime_gym.snapshot import decode_snapshot

SUPPORTED_AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED)


def parse_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """An ``AutoresetMode`` from itself, its value (``"NextStep"``) or its name (``"NEXT_STEP"``),
    in any case."""
    if isinstance(mode, AutoresetMode):
        return mode
    key = str(mode).replace("_", "").lower()
    for candidate in AutoresetMode:
        if key in (candidate.value.lower(), candidate.name.replace("_", "").lower()):
            return candidate
    raise ValueError(f"unknown autoreset_mode {mode!r}; valid: {[m.value for m in SUPPORTED_AUTORESET_MODES]}")


class DimeVectorEnv(VectorEnv):
    """A batch of DIME clusters, each with its own task, seed and action, stepped together.

    ## Spaces
    ``single_observation_space`` / ``single_action_space`` are ``DimeEnv``'s; the batched
    ``observation_space`` is a ``Dict`` of ``(num_envs, 8)`` and ``(num_envs, 1)`` boxes and the
    batched ``action_space`` a ``Box(int64, (num_envs, 4))``. Action rows may also use kind
    ``-1`` (``UNPARSABLE``: an agent answer with no valid command, a charged no-op).

    ## Step
    ``step(actions)`` returns ``(obs, rewards, terminations, truncations, infos)``: the Dict
    observation of fresh ``(num_envs, ...)`` arrays; float64 rewards; ``terminations`` always
    False (DIME has no terminal state); ``truncations`` True where an episode reached its length
    (or ``max_episode_steps``). ``infos`` holds arrays over sub-envs, each with Gymnasium's
    ``_key`` mask: ``reward_components`` (a dict of seven float64 arrays), ``score`` (grader
    score so far), ``action_errors`` (int64 ``ERR_*`` bitmask; ``dime_gym.core.actions.
    describe_errors`` turns one into messages) and ``task`` (a read-only array, the same object
    until some sub-env's task changes). There is no triage oracle in
    vector infos (it is per-observation Python; call ``dime_gym.oracle.triage`` when needed).

    ## Autoreset
    ``metadata["autoreset_mode"]`` is ``AutoresetMode.NEXT_STEP`` (Gymnasium's default): the
    ``step`` after a sub-env was truncated resets it instead of stepping it (its action is
    ignored, reward 0, flags False, the new episode's first observation). With
    ``autoreset_mode=AutoresetMode.DISABLED`` nothing resets by itself: reset finished sub-envs
    with ``reset(options={"reset_mask": mask})``; stepping one before that raises.

    ## Reset and seeding
    ``reset(seed=s)`` seeds sub-env ``i``'s reset stream with ``s + i`` (a list gives one seed
    each), like ``SyncVectorEnv``; every later episode of the sub-env, autoresets included,
    takes its seed from that stream, exactly as ``DimeEnv`` does. Episodes start inside the
    compiled call (``scenarios.episodes``); an autoreset happens inside the ``step`` call's kernel,
    row by row with the steps of the other sub-envs (no call and no Python of its own).
    ``options={"reset_mask": bool array}`` resets only those sub-envs; ``options={"task": ...}``
    (one id or one per sub-env) switches tasks for the sub-envs being reset.

    ## Snapshots
    ``snapshot(i)`` is sub-env ``i``'s episode as bytes (``dime_gym.snapshot``);
    ``restore(snapshot, indices)`` loads one snapshot into any set of sub-envs in one call.

    ## Arguments
    ``num_envs``; ``task``: one id or a sequence of ``num_envs`` ids (mixed tasks);
    ``max_episode_steps`` (truncate earlier than the task's length); ``render_mode``
    (``"ansi"`` or ``"rgb_array"``: ``render()`` returns one picture per sub-env); ``trace_path`` (for
    ``level_5_alibaba_trace`` sub-envs); ``autoreset_mode``; ``parallel`` (``None``: from
    ``core.batch.PARALLEL_MIN_BATCH`` sub-envs, whichever of the serial and the all-cores kernel
    runs this env's steps faster, timed as it runs (``engine.KernelChooser``); True/False to force);
    ``with_oracle`` (accepted as False for signature parity with ``DimeEnv``).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        task: str | Sequence[str] = DEFAULT_TASK,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        trace_path: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        parallel: bool | None = None,
        with_oracle: bool = False,
    ):
        if with_oracle:
            raise ValueError("DimeVectorEnv infos carry no triage oracle (it is per-observation Python); "
                             "call dime_gym.oracle.triage on a sub-env's observation instead")
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not supported; valid: None, 'ansi', 'rgb_array'")
        if max_episode_steps is not None and not 1 <= int(max_episode_steps):
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps!r}")
        mode = parse_autoreset_mode(autoreset_mode)
        if mode not in SUPPORTED_AUTORESET_MODES:
            raise ValueError(f"autoreset_mode {mode} is not supported; valid: {[m.value for m in SUPPORTED_AUTORESET_MODES]}")
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.max_episode_steps = MAX_EPISODE_STEPS if max_episode_steps is None else int(max_episode_steps)
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.parallel = parallel
        # parallel=None from PARALLEL_MIN_BATCH sub-envs: time both kernels, run the faster
        self._chooser = KernelChooser() if parallel is None and self.num_envs >= PARALLEL_MIN_BATCH else None
        self._default_tasks = self._expand_tasks(task)  # what autoresets start
        if trace_path is not None and not any("trace_path" in get_task(t).options for t in self._default_tasks):
            raise ValueError("trace_path is only valid when a sub-env runs level_5_alibaba_trace")

        self.single_observation_space = observation_space()
        self.single_action_space = spaces.MultiDiscrete(ACTION_NVEC)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        n = self.num_envs
        self._engine = Engine(self._default_tasks, max_episode_steps=self.max_episode_steps, trace_path=trace_path)
        self._default_codes = Engine.codes_of(self._default_tasks)
        self._pending_reset = np.zeros(n, dtype=np.bool_)  # NEXT_STEP: reset on the next step
        self._ended = np.zeros(n, dtype=np.bool_)  # DISABLED: must be reset before stepping
        self._all_stepping = np.ones(n, dtype=np.bool_)
        self._has_reset = False

    # -- Gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """Reset every sub-env, or those in ``options["reset_mask"]``. ``options["task"]`` (one
        id or one per sub-env) sets the task of the episodes started by this call only, as
        ``DimeEnv.reset`` does; autoresets return to the constructor's tasks. Everything is
        checked and every new episode built before anything changes, so a failing reset
        leaves the env as it was."""
        n = self.num_envs
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        new_tasks = options.pop("task", None)
        if options:
            raise ValueError(f"unknown reset option(s) {sorted(options)}; valid: 'reset_mask', 'task'")
        if mask is None:
            mask = np.ones(n, dtype=np.bool_)
        else:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({n},), got {mask.dtype} {mask.shape}")
            if not self._has_reset and not mask.all():
                raise ValueError("the first reset must reset every sub-env (no reset_mask, or an all-True one)")
        codes = Engine.codes_of(self._expand_tasks(new_tasks)) if new_tasks is not None else self._default_codes
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None] * n if seed is None else [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed must be an int, None or a list of {n} seeds, got {len(seeds)} seeds")
            for s in seeds:
                if s is not None and not (isinstance(s, (int, np.integer)) and s >= 0):
                    raise gym_error.Error(f"Seed must be None or an integer >= 0, got {s!r}")
        engine = self._engine
        load = engine.trace()  # a bad trace file is refused before anything changes
        if seed is None or isinstance(seed, (int, np.integer)):
            super().reset(seed=None if seed is None else int(seed))
        rows = np.flatnonzero(mask).tolist()
        seeded = [(b, seeds[b]) for b in rows if seeds[b] is not None]
        fresh = [b for b in rows if seeds[b] is None and not engine.seeded[b]]
        if fresh:  # never seeded: streams from fresh entropy
            entropy = np.random.SeedSequence().generate_state(len(fresh), np.uint64).tolist()
            seeded += list(zip(fresh, entropy))
        engine.reseed([b for b, _ in seeded], [s for _, s in seeded])
        engine.restart(mask, codes, self._use_all_cores(), load=load)
        self._pending_reset[mask] = False
        self._ended[mask] = False
        self._has_reset = True
        out = self._engine.observe(self._use_all_cores())
        return self._engine.observation(out), self._infos(out, mask)

    def step(self, actions):
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        n = self.num_envs
        a = validate_action_batch(actions, n)
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        if not next_step and self._ended.any():
            ended = np.flatnonzero(self._ended)
            raise RuntimeError(f"sub-envs {ended[:10].tolist()}{' ...' if len(ended) > 10 else ''} have ended; "
                               "reset them first with reset(options={'reset_mask': mask})")
        parallel = self.parallel if self._chooser is None else self._chooser.choose()
        start = time.perf_counter()
        if next_step:  # sub-envs truncated last step start their next episode inside the same call
            out = self._engine.restart_or_step(a, self._pending_reset, self._default_codes, parallel)
        else:
            out = self._engine.step(a, self._all_stepping, parallel)
        if self._chooser is not None:
            self._chooser.record(parallel, time.perf_counter() - start)
        truncations = out.truncated
        if next_step:
            self._pending_reset = truncations.copy()
        else:
            self._ended = truncations.copy()
        terminations = np.zeros(n, dtype=np.bool_)
        return self._engine.observation(out), out.rewards, terminations, truncations, self._infos(out, self._all_stepping)

    def render(self) -> tuple[str, ...] | tuple[np.ndarray, ...] | None:
        """One picture per sub-env: text (``render_mode="ansi"``) or an ``(H, W, 3) uint8``
        array (``"rgb_array"``, see ``dime_gym.render``); ``None`` without a mode or before reset."""
        if self.render_mode is None or not self._has_reset:
            return None
        return tuple(self._engine.render(b, self.render_mode) for b in range(self.num_envs))

    # -- snapshots ---------------------------------------------------------------------------------
    def snapshot(self, index: int) -> bytes:
        """Sub-env ``index``'s current episode as snapshot bytes (``dime_gym.snapshot``)."""
        if not self._has_reset:
            raise RuntimeError("call reset() before snapshot()")
        return self._engine.snapshot(self._index(index))

    def restore(self, snapshot: bytes, indices=None):
        """Load one snapshot into the sub-envs ``indices`` (an int, a sequence, a bool mask or
        ``None`` for all), in one call; each then continues exactly as the snapshotted episode
        would (sub-envs restored from one snapshot share its random stream).

        Returns:
            ``(obs, infos)`` of the whole batch, the ``_key`` masks marking the restored sub-envs.

        Raises:
            ValueError: a truncated, corrupted or incompatible snapshot, or a bad mask (nothing
                changes).
            IndexError, TypeError: an index out of range or not an integer (nothing changes).
            RuntimeError: only some sub-envs named before the first ``reset()``.
        """
        contents = decode_snapshot(snapshot)
        n = self.num_envs
        mask = np.zeros(n, dtype=np.bool_)
        if indices is None:
            mask[:] = True
        else:
            index_array = np.asarray(indices)
            if index_array.dtype == np.bool_:
                if index_array.shape != (n,):
                    raise ValueError(f"a boolean indices mask must have shape ({n},), got {index_array.shape}")
                mask = index_array.copy()
            else:
                for i in np.atleast_1d(index_array).tolist():
                    mask[self._index(i)] = True
        if not self._has_reset and not mask.all():
            raise RuntimeError("before the first reset(), restore into every sub-env (indices=None); "
                               "otherwise call reset() first so the other sub-envs hold seeded episodes")
        rows = np.flatnonzero(mask)
        self._engine.load(contents, rows)
        over = int(contents.state["step"]) >= self._engine.step_limit_for(contents.params)
        self._pending_reset[rows] = over and self.autoreset_mode == AutoresetMode.NEXT_STEP
        self._ended[rows] = over and self.autoreset_mode == AutoresetMode.DISABLED
        self._has_reset = True
        out = self._engine.observe(self._use_all_cores())
        return self._engine.observation(out), self._infos(out, mask)

    # -- read-only views for analysis --------------------------------------------------------------
    @property
    def tasks(self) -> tuple[str, ...]:
        """The task id of every sub-env."""
        return tuple(self._engine.task_ids.tolist())

    @property
    def state_records(self) -> np.ndarray:
        """A copy of the (num_envs,) ``STATE_DTYPE`` records."""
        return self._engine.states.copy()

    @property
    def facts(self) -> tuple[dict, ...]:
        """Each sub-env's episode facts (fault step, faulty node, ...)."""
        engine = self._engine
        return tuple(engine.facts_of(b) if engine.started[b] else {} for b in range(self.num_envs))

    # -- helpers -----------------------------------------------------------------------------------
    def _expand_tasks(self, task) -> list[str]:
        if isinstance(task, str):
            get_task(task)
            return [task] * self.num_envs
        tasks = list(task)
        if len(tasks) != self.num_envs:
            raise ValueError(f"task must be one id or {self.num_envs} ids (one per sub-env), got {len(tasks)}")
        for t in set(tasks):
            get_task(t)
        return tasks

    def _index(self, index) -> int:
        b = operator.index(index)  # TypeError for 1.7, not a silent sub-env 1
        if not -self.num_envs <= b < self.num_envs:
            raise IndexError(f"sub-env index {index} out of range for {self.num_envs} sub-envs")
        return b % self.num_envs

    def _use_all_cores(self) -> bool:
        """Whether calls other than ``step`` (observing, starting episodes) run the ``prange``
        kernels: as forced by ``parallel``, else when the chooser has found them faster (without
        a chooser, ``parallel`` is None only below ``PARALLEL_MIN_BATCH`` sub-envs: serial)."""
        return bool(self.parallel) if self._chooser is None else self._chooser.faster()

    def _infos(self, out: BatchOutputs, mask: np.ndarray) -> dict:
        """The step's infos (``task`` is the engine's read-only array, the same while tasks stay)."""
        return {
            "reward_components": dict(zip(REWARD_COMPONENTS, out.reward_components)),
            "_reward_components": mask.copy(),
            "score": out.scores,
            "_score": mask.copy(),
            "action_errors": out.action_errors,
            "_action_errors": mask.copy(),
            "task": self._engine.task_ids,
            "_task": mask.copy(),
        }
