"""One engine for N DIME clusters: every shell's episode bookkeeping, in one place.

An ``Engine`` holds the ``(N,)`` params and state records (each cluster's random streams live
in its state), each row's episode (task, facts), its step limit, and the compiled calls that
step and observe the rows. The shells are thin: ``DimeEnv`` is an engine of one plus
Gymnasium's API, ``DimeVectorEnv`` an engine of N plus autoreset, and ``score_actions`` an
engine of K copies of one snapshot. What differs between them is only how episodes are seeded
and when they restart.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core.batch import BatchOutputs, advance_batch, observe_single, step_single
from dime_gym.core.state import MAX_EPISODE_STEPS, empty_batch
from dime_gym.observation import ObservationSlots, observation_from_buffers
from dime_gym.render import render_ansi, render_rgb
from dime_gym.scenarios import Episode, build_episode, get_task
from dime_gym.snapshot import SnapshotContents, encode_snapshot, repeat_record

_EPISODE_SEED_BOUND = 2**63 - 1  # episode seeds are drawn from [0, this)


class KernelChooser:
    """Picks the serial or the ``prange`` kernel for each batched step by timing both on the
    caller's own calls: the faster by recent mean time per call, with the other path tried
    once every ``probe_every`` calls so that a change of load is noticed (a probe's time
    replaces that path's stale mean; a lucky probe costs a few calls until the means cross back).

    Both kernels give the same bits (each cluster's randomness is in its own record), so the
    choice changes only speed. It matters: two threads are ~1.5-1.9x faster than one on an
    idle 2-core machine, but ~5x slower when another process holds a core, because every call
    waits at OpenMP's barrier for the descheduled thread.
    """

    def __init__(self, probe_every: int = 128, decay: float = 0.75, warmup: int = 2):
        self.probe_every = probe_every
        self.decay = decay  # weight of the old mean in each update
        self.warmup = warmup  # first calls of a path not counted (compiling, loading the cache)
        self.calls = {False: 0, True: 0}
        self.mean_seconds = {False: float("nan"), True: float("nan")}
        self._count = 0

    def choose(self) -> bool:
        """Whether the next call runs the ``prange`` kernel."""
        self._count += 1
        for parallel in (False, True):
            if self.calls[parallel] < self.warmup + 2:  # both measured before choosing
                return parallel
        faster = self.faster()
        return (not faster) if self._count % self.probe_every == 0 else faster

    def faster(self) -> bool:
        """Whether the ``prange`` kernel is the faster so far (False until both are timed)."""
        return bool(self.mean_seconds[True] < self.mean_seconds[False])

    def record(self, parallel: bool, seconds: float) -> None:
        """Report how long a call of the chosen kernel took."""
        self.calls[parallel] += 1
        if self.calls[parallel] <= self.warmup:
            return
        old = self.mean_seconds[parallel]
        probe = self.mean_seconds[not parallel] == self.mean_seconds[not parallel] and parallel != self.faster()
        # a probe's path was last timed long ago: its new time replaces the stale mean
        self.mean_seconds[parallel] = seconds if old != old or probe else self.decay * old + (1 - self.decay) * seconds


class Engine:
    """N clusters and their episodes.

    Attributes:
        params, states: (N,) ``PARAMS_DTYPE`` / ``STATE_DTYPE`` records (the kernels' input).
        episodes: (N,) the ``Episode`` each row runs (``None`` until one starts there).
        task_ids: (N,) object array of each row's task id (its episode's, or the shell's
            default before one starts).
        step_limit: (N,) int64 step at which each row's episode is truncated.
        max_episode_steps: truncate every episode at this step at the latest.
        task_options: options for tasks that take them (``trace_path``).
    """

    def __init__(self, task_ids, max_episode_steps: int | None = None, task_options: dict | None = None):
        n = len(task_ids)
        self.params, self.states = empty_batch(n)
        self.episodes: list[Episode | None] = [None] * n
        self.task_ids = np.array(list(task_ids), dtype=object)
        self.step_limit = np.zeros(n, dtype=np.int64)
        self.max_episode_steps = MAX_EPISODE_STEPS if max_episode_steps is None else int(max_episode_steps)
        self.task_options = dict(task_options or {})
        self._slots: ObservationSlots | None = None  # single-cluster observations (step_one)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_slots"] = None  # a copy would no longer view its buffers; the next step makes new ones
        return state

    @property
    def n(self) -> int:
        """Number of clusters."""
        return self.states.shape[0]

    @classmethod
    def from_snapshot(cls, contents: SnapshotContents, k: int) -> Engine:
        """``k`` identical copies of a decoded snapshot's cluster (common random numbers)."""
        engine = cls.__new__(cls)
        engine.params = repeat_record(contents.params, k)
        engine.states = repeat_record(contents.state, k)
        episode = Episode(task=get_task(contents.task), params=contents.params, state=contents.state, facts=contents.facts)
        engine.episodes = [episode] * k
        engine.task_ids = np.full(k, contents.task, dtype=object)
        engine.max_episode_steps = MAX_EPISODE_STEPS
        engine.step_limit = np.full(k, engine.step_limit_for(contents.params), dtype=np.int64)
        engine.task_options = {}
        engine._slots = None
        return engine

    # -- episodes ------------------------------------------------------------------------------
    def step_limit_for(self, params) -> int:
        """The step at which an episode with ``params`` (a ``PARAMS_DTYPE`` record) is truncated."""
        return min(int(params["episode_steps"]), self.max_episode_steps)

    def draw_episode(self, task: str, rng: np.random.Generator) -> Episode:
        """A new episode of ``task`` whose seed is drawn from ``rng`` (which advances)."""
        options = self.task_options if "trace_path" in get_task(task).options else {}
        return build_episode(task, int(rng.integers(0, _EPISODE_SEED_BOUND)), **options)

    def start(self, row: int, episode: Episode) -> None:
        """Run ``episode`` from its first step in ``row``."""
        self.episodes[row] = episode
        self.task_ids[row] = episode.task.id
        self.params[row] = episode.params
        self.states[row] = episode.state
        self.step_limit[row] = self.step_limit_for(episode.params)

    def load(self, contents: SnapshotContents, rows: np.ndarray) -> None:
        """Continue the snapshotted episode in every row of ``rows`` (indices), each with its
        own copy of the facts."""
        task = get_task(contents.task)
        self.params[rows] = contents.params
        self.states[rows] = contents.state
        self.step_limit[rows] = self.step_limit_for(contents.params)
        self.task_ids[rows] = contents.task
        for row in rows.tolist():
            self.episodes[row] = Episode(task=task, params=contents.params, state=contents.state, facts=dict(contents.facts))

    def snapshot(self, row: int) -> bytes:
        """``row``'s current episode as snapshot bytes (``dime_gym.snapshot``)."""
        return encode_snapshot(self.task_ids[row], self.params[row], self.states[row], self.episodes[row].facts)

    # -- stepping and observing ----------------------------------------------------------------
    def step(self, actions: np.ndarray, stepping: np.ndarray, parallel: bool | None = None) -> BatchOutputs:
        """Step the rows where ``stepping`` is True with their ``actions`` ((N, 4) int64,
        range-checked) and observe every row, in one compiled call."""
        out = BatchOutputs.allocate(self.n)
        advance_batch(self.params, self.states, actions, stepping, self.step_limit, out, parallel)
        return out

    def observe(self, parallel: bool | None = None) -> BatchOutputs:
        """Observe every row without stepping any."""
        n = self.n
        return self.step(np.zeros((n, 4), dtype=np.int64), np.zeros(n, dtype=np.bool_), parallel)

    def step_one(self, action: np.ndarray, allow_unparsable: bool) -> tuple[tuple, dict]:
        """The fast path of an engine of one: validate ``action`` ((4,) int64, C-contiguous),
        step, observe and score in one compiled call. Returns ``(result, observation)``, the
        result indexed by ``core.batch.RESULT_*`` (a refused step changes nothing)."""
        slots = self._slots
        if slots is None or slots.taken == len(slots.observations):
            slots = self._slots = ObservationSlots()
        k = slots.taken  # taken before the call: a refused step leaves its slot unwritten, never reused
        slots.taken = k + 1
        return step_single(self.params, self.states, action, allow_unparsable, slots.records, k), slots.observations[k]

    def observe_one(self) -> tuple[tuple, dict]:
        """``step_one``'s ``(result, observation)`` of row 0 without stepping."""
        slots, k = self._next_slot()
        return observe_single(self.params, self.states, slots.records, k), slots.observations[k]

    def _next_slot(self) -> tuple[ObservationSlots, int]:
        """The observation slots of an engine of one and the index of the next free one
        (``step_one`` does the same inline: a call costs a tenth of a microsecond)."""
        slots = self._slots
        if slots is None or slots.taken == len(slots.observations):
            slots = self._slots = ObservationSlots()
        k = slots.taken
        slots.taken = k + 1
        return slots, k

    @staticmethod
    def observation(out: BatchOutputs) -> dict[str, np.ndarray]:
        """The batched Dict observation in ``out`` (views of its buffers)."""
        return observation_from_buffers(out.node_obs, out.flag_obs, out.scalar_obs, out.step_obs)

    # -- pictures ------------------------------------------------------------------------------
    def render(self, row: int, mode: str):
        """``row``'s cluster as ``mode`` draws it: ``"rgb_array"`` (an ``(H, W, 3) uint8``
        array) or ``"ansi"`` (text); ``None`` for any other mode."""
        if mode == "rgb_array":
            return render_rgb(self.states[row], self.params[row])
        if mode == "ansi":
            return render_ansi(self.states[row], self.task_ids[row])
        return None
