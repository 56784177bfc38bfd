"""One engine for N DIME clusters: every shell's episode bookkeeping, in one place.

An ``Engine`` holds the ``(N,)`` params and state records (each cluster's random streams live
in its state), each row's task code, episode facts, initial state and step limit, each row's
reset stream (where its episode seeds come from, ``scenarios.episodes``), and the compiled
calls that start, step and observe the rows. Episodes start inside compiled code, so restarting
any set of rows costs one call, not Python per row. The shells are thin: ``DimeEnv`` is an
engine of one plus Gymnasium's API, ``DimeVectorEnv`` an engine of N plus autoreset, and
``score_actions`` an engine of K copies of one snapshot. What differs between them is only how
rows are seeded and when they restart.
"""

from __future__ import annotations

import collections

import numpy as np

from dime_gym.core.batch import BatchOutputs, advance_batch, observe_single, step_single
from dime_gym.core.rng import as_uint64
from dime_gym.core.state import MAX_EPISODE_STEPS, STATE_DTYPE, empty_batch, set_record_rows, zeroed_records
from dime_gym.observation import ObservationSlots, observation_from_buffers
from dime_gym.render import render_ansi, render_rgb
from dime_gym.scenarios import TABLES, TASK_CODES, TASKS_BY_CODE, Episode, facts_dict, get_task, trace_load
from dime_gym.scenarios.episodes import next_draw, reset_stream_from_seed, restart_rows, start_or_advance_rows
from dime_gym.scenarios.faults import MAX_FACTS
from dime_gym.snapshot import SnapshotContents, encode_snapshot

UNKNOWN_FACT = np.iinfo(np.int64).min  # a fact a restored snapshot did not carry
# The trace load handed to a start-or-step call in which no row starts an episode (read-only
# float64, as trace loads are, so the kernel keeps one compiled signature): fetching the trace
# checks its file on disk, which a plain step must not pay for.
_NO_TRACE_LOAD = np.empty(0)
_NO_TRACE_LOAD.flags.writeable = False
_TASK_ID_BY_CODE = np.array([TASKS_BY_CODE[code].id for code in range(len(TASKS_BY_CODE))], dtype=object)


class KernelChooser:
    """Picks the serial or the ``prange`` kernel for each batched step by timing both on the
    caller's own calls: the faster by the median of each path's last ``window`` call times, with
    the other path tried once every ``probe_every`` calls so that a change of load is noticed
    (a probe's time replaces that path's stale window).

    Both kernels give the same bits (each cluster's randomness is in its own record), so the
    choice changes only speed. It matters: two threads are ~1.5-1.9x faster than one on an
    idle 2-core machine, but ~5x slower when another process holds a core, because every call
    waits at OpenMP's barrier for the descheduled thread. A median, not a mean, so that one
    call the VM happened to stall does not hand the batch to the slower kernel until the next
    probe; a lasting change of load flips the choice within ``window // 2 + 1`` calls.
    """

    def __init__(self, probe_every: int = 128, window: int = 3, warmup: int = 2):
        self.probe_every = probe_every
        self.warmup = warmup  # first calls of a path not counted (compiling, loading the cache)
        self.calls = {False: 0, True: 0}
        self.recent_seconds = {False: collections.deque(maxlen=window), True: collections.deque(maxlen=window)}
        self._count = 0

    def choose(self) -> bool:
        """Whether the next call runs the ``prange`` kernel."""
        self._count += 1
        for parallel in (False, True):
            if self.calls[parallel] < self.warmup + 2:  # both measured before choosing
                return parallel
        faster = self.faster()
        return (not faster) if self._count % self.probe_every == 0 else faster

    def typical_seconds(self, parallel: bool) -> float:
        """The median of a path's recent call times (NaN before it was timed)."""
        recent = sorted(self.recent_seconds[parallel])
        return recent[len(recent) // 2] if recent else float("nan")

    def faster(self) -> bool:
        """Whether the ``prange`` kernel is the faster so far (False until both are timed)."""
        return bool(self.typical_seconds(True) < self.typical_seconds(False))

    def record(self, parallel: bool, seconds: float) -> None:
        """Report how long a call of the chosen kernel took."""
        self.calls[parallel] += 1
        if self.calls[parallel] <= self.warmup:
            return
        recent = self.recent_seconds[parallel]
        if recent and self.recent_seconds[not parallel] and parallel != self.faster():
            recent.clear()  # a probe: this path was last timed long ago, its old times are stale
        recent.append(seconds)


class Engine:
    """N clusters and their episodes.

    Attributes:
        params, states: (N,) ``PARAMS_DTYPE`` / ``STATE_DTYPE`` records (the kernels' input).
        start_states: (N,) each row's episode's initial state (``episode``).
        facts: (N, ``MAX_FACTS``) int64 each row's episode facts, in its task's ``fact_names``
            order (``UNKNOWN_FACT`` where a restored snapshot had none).
        task_codes: (N,) int64 each row's task (``scenarios.TASK_CODES``); ``task_ids`` names them.
        step_limit: (N,) int64 step at which each row's episode is truncated.
        reset_streams: (N,) uint64 where each row's episode seeds come from; ``seeded`` (N,)
            bool says whether a row's stream was set yet.
        max_episode_steps: truncate every episode at this step at the latest.
        trace_path: the CSV the trace task replays (``None``: the bundled trace).
    """

    def __init__(self, task_ids, max_episode_steps: int | None = None, trace_path: str | None = None):
        n = len(task_ids)
        self.params, self.states = empty_batch(n)
        self.start_states = zeroed_records(n, STATE_DTYPE)
        self.facts = np.zeros((n, MAX_FACTS), dtype=np.int64)
        self.task_codes = self.codes_of(task_ids)
        self.step_limit = np.zeros(n, dtype=np.int64)
        self.reset_streams = np.zeros(n, dtype=np.uint64)
        self.seeded = np.zeros(n, dtype=np.bool_)
        self.started = np.zeros(n, dtype=np.bool_)
        self.max_episode_steps = MAX_EPISODE_STEPS if max_episode_steps is None else int(max_episode_steps)
        self.trace_path = trace_path
        self._slots: ObservationSlots | None = None  # single-cluster observations (step_one)
        self._record_bytes: tuple[np.ndarray, np.ndarray] | None = None  # params, states as uint8 (step_one)
        self._task_ids: np.ndarray | None = None  # task_ids, until task_codes change

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_slots"] = None  # a copy would no longer view its buffers; the next step makes new ones
        state["_record_bytes"] = None
        return state

    @property
    def n(self) -> int:
        """Number of clusters."""
        return self.states.shape[0]

    @property
    def task_ids(self) -> np.ndarray:
        """(N,) read-only object array of each row's task id (one array while the tasks stay the
        same: the vector env hands it out in every step's infos)."""
        if self._task_ids is None:
            self._task_ids = _TASK_ID_BY_CODE[self.task_codes]
            self._task_ids.flags.writeable = False
        return self._task_ids

    @staticmethod
    def codes_of(task_ids) -> np.ndarray:
        """(N,) int64 task codes of task ids (``ValueError`` for an unknown id)."""
        code_of = {task_id: TASK_CODES[get_task(task_id).id] for task_id in set(task_ids)}
        return np.fromiter((code_of[task_id] for task_id in task_ids), dtype=np.int64, count=len(task_ids))

    @classmethod
    def from_snapshot(cls, contents: SnapshotContents, k: int) -> Engine:
        """``k`` identical copies of a decoded snapshot's cluster (common random numbers)."""
        engine = cls([contents.task] * k)
        engine.load(contents, slice(None))
        return engine

    # -- episodes ------------------------------------------------------------------------------
    def step_limit_for(self, params) -> int:
        """The step at which an episode with ``params`` (a ``PARAMS_DTYPE`` record) is truncated."""
        return min(int(params["episode_steps"]), self.max_episode_steps)

    def trace(self) -> np.ndarray:
        """The trace task's load for episodes started now (``ValueError`` for a bad CSV)."""
        return trace_load(self.trace_path)

    def reseed(self, rows, seeds) -> None:
        """Set the reset stream of each row of ``rows`` from its integer seed in ``seeds``."""
        for row, seed in zip(rows, seeds):
            self.reset_streams[row] = reset_stream_from_seed(as_uint64(seed))
            self.seeded[row] = True

    def draw(self, row: int) -> int:
        """The next draw of ``row``'s reset stream (advanced), as a Python int."""
        return int(next_draw(self.reset_streams, row))

    def restart(self, mask: np.ndarray, codes: np.ndarray | None = None, parallel: bool = False,
                load: np.ndarray | None = None) -> None:
        """Start a new episode in every row where ``mask`` is True, of task ``codes`` (default:
        the rows' current tasks), its seed the row's next reset-stream draw; one compiled call.
        ``load`` is the trace task's load (``trace()``), when the caller fetched it already."""
        if codes is not None:
            self.task_codes[mask] = codes[mask]
            self._task_ids = None
        restart_rows(mask, self.task_codes, self.reset_streams, self.params, self.states, self.start_states,
                     self.facts, self.step_limit, self.max_episode_steps, TABLES,
                     self.trace() if load is None else load, parallel)
        self.started |= mask

    def episode(self, row: int) -> Episode | None:
        """``row``'s episode (task, params, initial state, facts); ``None`` before one starts.
        After ``load`` its initial state is the snapshot's."""
        if not self.started[row]:
            return None
        task = TASKS_BY_CODE[int(self.task_codes[row])]
        return Episode(task=task, params=self.params[row].copy(), state=self.start_states[row].copy(),
                       facts=self.facts_of(row))

    def facts_of(self, row: int) -> dict:
        """``row``'s episode facts by name (facts a restored snapshot lacked are left out)."""
        task = TASKS_BY_CODE[int(self.task_codes[row])]
        return {k: v for k, v in facts_dict(task, self.facts[row]).items() if v != UNKNOWN_FACT}

    def load(self, contents: SnapshotContents, rows) -> None:
        """Continue the snapshotted episode in every row of ``rows`` (a row, indices or a slice).

        Raises:
            ValueError: a fact of the snapshot is not an integer (nothing changes).
        """
        task = get_task(contents.task)
        facts_row = np.full(MAX_FACTS, UNKNOWN_FACT, dtype=np.int64)
        for k, name in enumerate(task.fact_names):
            value = contents.facts.get(name, UNKNOWN_FACT)
            if type(value) is not int:
                raise ValueError(f"snapshot fact {name!r} must be an integer, got {value!r}")
            facts_row[k] = value
        set_record_rows(self.params, rows, contents.params)
        set_record_rows(self.states, rows, contents.state)
        set_record_rows(self.start_states, rows, contents.state)
        self.facts[rows] = facts_row
        self.step_limit[rows] = self.step_limit_for(contents.params)
        self.task_codes[rows] = TASK_CODES[task.id]
        self._task_ids = None
        self.started[rows] = True

    def snapshot(self, row: int) -> bytes:
        """``row``'s current episode as snapshot bytes (``dime_gym.snapshot``)."""
        return encode_snapshot(self.task_ids[row], self.params[row], self.states[row], self.facts_of(row))

    # -- stepping and observing ----------------------------------------------------------------
    def step(self, actions: np.ndarray, stepping: np.ndarray, parallel: bool | None = None) -> BatchOutputs:
        """Step the rows where ``stepping`` is True with their ``actions`` ((N, 4) int64,
        range-checked) and observe every row, in one compiled call."""
        out = BatchOutputs.allocate(self.n)
        advance_batch(self.params, self.states, actions, stepping, self.step_limit, out, parallel)
        return out

    def restart_or_step(self, actions: np.ndarray, restarting: np.ndarray, codes: np.ndarray,
                        parallel: bool | None = None) -> BatchOutputs:
        """Start a new episode (task ``codes[b]``, seed the row's next reset-stream draw) in the
        rows where ``restarting`` (rows already started), step every other row with its
        ``actions`` row ((N, 4) int64, range-checked), observe all: one compiled call, so an
        autoreset costs no call of its own (``scenarios.episodes.start_or_advance_rows``)."""
        out = BatchOutputs.allocate(self.n)
        load = self.trace() if restarting.any() else _NO_TRACE_LOAD
        retasked = start_or_advance_rows(restarting, codes, self.task_codes, self.reset_streams, self.start_states,
                                         self.facts, self.max_episode_steps, TABLES, load, self.params, self.states,
                                         actions, self.step_limit, out, parallel)
        if retasked:
            self._task_ids = None
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
            slots = self._new_slots()
        k = slots.taken  # taken before the call: a refused step leaves its slot unwritten, never reused
        slots.taken = k + 1
        params_bytes, states_bytes = self._record_bytes
        return (step_single(params_bytes, states_bytes, action, allow_unparsable, slots.record_bytes, k),
                slots.observations[k])

    def observe_one(self) -> tuple[tuple, dict]:
        """``step_one``'s ``(result, observation)`` of row 0 without stepping."""
        slots, k = self._next_slot()
        params_bytes, states_bytes = self._record_bytes
        return observe_single(params_bytes, states_bytes, slots.record_bytes, k), slots.observations[k]

    def _next_slot(self) -> tuple[ObservationSlots, int]:
        """The observation slots of an engine of one and the index of the next free one
        (``step_one`` does the same inline: a call costs a tenth of a microsecond)."""
        slots = self._slots
        if slots is None or slots.taken == len(slots.observations):
            slots = self._new_slots()
        k = slots.taken
        slots.taken = k + 1
        return slots, k

    def _new_slots(self) -> ObservationSlots:
        """Fresh observation slots for an engine of one (and, once, its records as the uint8
        views the single-cluster kernels take)."""
        if self._record_bytes is None:
            self._record_bytes = (self.params.view(np.uint8), self.states.view(np.uint8))
        self._slots = ObservationSlots()
        return self._slots

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
            return render_ansi(self.states[row], _TASK_ID_BY_CODE[self.task_codes[row]])
        return None
