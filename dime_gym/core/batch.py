"""Compiled calls that step and observe clusters: one cluster (the single env) or a batch of N
(the vector env, counterfactual scoring), all through the same ``step_cluster`` and
``write_observation`` kernels, so the single and batched paths cannot drift.

Batches of at least ``PARALLEL_MIN_BATCH`` clusters run ``prange``-parallel over cores; smaller
ones run serially (the fork/join overhead would outweigh the work). Both orders give the same
bits: each cluster's randomness lives in its own state record.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
from numba import prange

from dime_gym.core._jit import CACHE_LINE_BYTES, borrowed, inlined_kernel, kernel, parallel_kernel, prefetch, records_view
from dime_gym.core.actions import ACTION_NVEC, N_ACTION_KINDS, QUERY_LOGS, UNPARSABLE
from dime_gym.core.dynamics import step_batch_parallel, step_batch_serial, step_cluster
from dime_gym.core.grading import episode_score
from dime_gym.core.observe import N_FLAG_OBS, N_NODE_OBS, N_SCALAR_OBS, SLOT_DTYPE, write_observation
from dime_gym.core.params import PARAMS_DTYPE
from dime_gym.core.state import MAX_EPISODE_STEPS, N_NODES, N_REWARD_COMPONENTS, STATE_DTYPE

PARALLEL_MIN_BATCH = 64  # clusters; below this a serial loop is as fast (measured, 2 cores)

# What the single-cluster calls return besides the observation: one tuple (returning it is
# cheaper than filling and reading back an array), indexed by these constants.
RESULT_STATUS, RESULT_REWARD, RESULT_SCORE, RESULT_ACTION_ERRORS, RESULT_TRUNCATED = 0, 1, 2, 3, 4
RESULT_COMPONENTS = 5  # first of N_REWARD_COMPONENTS entries
RESULT_LOGS_NODE = RESULT_COMPONENTS + N_REWARD_COMPONENTS  # node a query_logs action asked about, else -1

STEPPED = 0
EPISODE_OVER = -1  # step_single refused: the episode had already ended


@kernel
def invalid_action_field(action, allow_unparsable):
    """Index of the first field of ``action`` (4,) outside ``MultiDiscrete(ACTION_NVEC)``, or -1;
    kind ``UNPARSABLE`` counts as valid when ``allow_unparsable``."""
    kind = action[0]
    if not (0 <= kind < N_ACTION_KINDS or (allow_unparsable and kind == UNPARSABLE)):
        return 0
    for f in range(1, 4):
        if not 0 <= action[f] < ACTION_NVEC[f]:
            return f
    return -1


@kernel
def first_invalid_action(actions, allow_unparsable):
    """Flat index ``row * 4 + field`` of the first out-of-range entry of ``actions`` (N, 4), or -1."""
    for b in range(actions.shape[0]):
        field = invalid_action_field(actions[b], allow_unparsable)
        if field >= 0:
            return b * 4 + field
    return -1


# --- one cluster --------------------------------------------------------------------------------
@kernel
def _observe_cluster(status, p, s, observation, logs_node):
    write_observation(s, observation.node_obs, observation.flag_obs, observation.scalar_obs[:, 0], observation.step_obs)
    c = s.reward_components
    return (status, s.reward, episode_score(s), s.action_errors, s.step >= p.episode_steps,
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], logs_node)


@kernel
def _refused(status):
    return (status, 0.0, 0.0, 0, False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1)


@kernel
def step_single(params_bytes, states_bytes, action, allow_unparsable, slot_bytes, slot):
    """Validate ``action``, step cluster 0 and write its observation, in one call (with few
    arguments, and none structured: Numba's dispatch costs ~0.1 µs per argument and ~0.15 µs
    more to type a structured array, so the records come as bytes: ``_jit.records_view``).

    Args:
        params_bytes, states_bytes: the (1,) ``PARAMS_DTYPE`` / ``STATE_DTYPE`` arrays viewed
            as uint8 (``records.view(np.uint8)``); the state is updated.
        action: (4,) int64. allow_unparsable: accept kind ``UNPARSABLE``.
        slot_bytes: (K,) ``core.observe.SLOT_DTYPE`` records as uint8, each the four
            ``core.observe`` buffers of one observation (``ObservationSlots.record_bytes``).
        slot: which of the K records to write.

    Returns:
        The tuple ``(status, reward, score, action_errors, truncated, *reward_components,
        logs_node)`` (``RESULT_*`` indices). ``status`` is ``STEPPED``; ``EPISODE_OVER``; or
        ``field + 1`` for the first out-of-range action field. ``logs_node`` is the node of a
        ``query_logs`` action, else -1. When refused nothing changed (the slot is not written)
        and the other entries are zeros (``logs_node`` -1).
    """
    field = invalid_action_field(action, allow_unparsable)
    if field >= 0:
        return _refused(field + 1)
    p = records_view(params_bytes, PARAMS_DTYPE)[0]
    s = records_view(states_bytes, STATE_DTYPE)[0]
    if s.step >= p.episode_steps:
        return _refused(EPISODE_OVER)
    step_cluster(p, s, action)
    logs_node = action[1] if action[0] == QUERY_LOGS else -1
    return _observe_cluster(STEPPED, p, s, records_view(slot_bytes, SLOT_DTYPE)[slot], logs_node)


@kernel
def observe_single(params_bytes, states_bytes, slot_bytes, slot):
    """Write cluster 0's observation into record ``slot`` without stepping (after reset or
    restore); arguments as for ``step_single``; returns the same tuple as ``step_single`` with
    status ``STEPPED``, no reward change and ``logs_node`` -1."""
    p = records_view(params_bytes, PARAMS_DTYPE)[0]
    s = records_view(states_bytes, STATE_DTYPE)[0]
    return _observe_cluster(STEPPED, p, s, records_view(slot_bytes, SLOT_DTYPE)[slot], -1)


# --- a batch of clusters ------------------------------------------------------------------------
@dataclasses.dataclass
class BatchOutputs:
    """Fresh output arrays of one batched call over N clusters (views of them become the
    batched observation, so a new set is allocated for every call).

    Attributes:
        node_obs: (3, N, 8) float32; flag_obs: (2, N, 8) int8; scalar_obs: (8, N, 1) float32;
            step_obs: (N, 1) int64 (``core.observe`` layout, one extra axis for the batch).
        rewards: (N,) float64, 0 where a cluster was not stepped.
        truncated: (N,) bool, episode reached its step limit in this call.
        reward_components: (7, N) float64, one row per component.
        scores: (N,) float64 grader score so far. action_errors: (N,) int64 ``ERR_*`` bitmask.
    """

    node_obs: np.ndarray
    flag_obs: np.ndarray
    scalar_obs: np.ndarray
    step_obs: np.ndarray
    rewards: np.ndarray
    truncated: np.ndarray
    reward_components: np.ndarray
    scores: np.ndarray
    action_errors: np.ndarray

    @classmethod
    def allocate(cls, n: int) -> BatchOutputs:
        return cls(
            node_obs=np.empty((N_NODE_OBS, n, N_NODES), dtype=np.float32),
            flag_obs=np.empty((N_FLAG_OBS, n, N_NODES), dtype=np.int8),
            scalar_obs=np.empty((N_SCALAR_OBS, n, 1), dtype=np.float32),
            step_obs=np.empty((n, 1), dtype=np.int64),
            rewards=np.empty(n),
            truncated=np.empty(n, dtype=np.bool_),
            reward_components=np.empty((N_REWARD_COMPONENTS, n)),
            scores=np.empty(n),
            action_errors=np.empty(n, dtype=np.int64),
        )


# The bytes of a cluster's records that a step reads: all of the state, the params but the
# load profile (one of its MAX_EPISODE_STEPS entries is read per step).
_STATE_BYTES = STATE_DTYPE.itemsize
_PARAMS_BYTES = PARAMS_DTYPE.itemsize
_PROFILE_START = PARAMS_DTYPE.fields["load_profile"][1]
_PROFILE_STOP = _PROFILE_START + PARAMS_DTYPE.fields["load_profile"][0].itemsize
_PROFILE_ENTRY_BYTES = PARAMS_DTYPE.fields["load_profile"][0].base.itemsize


@inlined_kernel
def _prefetch_bytes(records, b, start, stop):
    """Prefetch every cache line holding bytes ``start`` to ``stop - 1`` of ``records[b]``."""
    for offset in range(start, stop + CACHE_LINE_BYTES - 1, CACHE_LINE_BYTES):
        prefetch(records, b, min(offset, stop - 1))


@inlined_kernel
def prefetch_row(params, states, b):
    """Start fetching the lines of cluster ``b``'s records that its step will touch, so that the
    batch loop, issuing this one cluster ahead, rarely waits on memory (a 1,024-cluster batch's
    records are ~3 MB, more than a core's L2)."""
    _prefetch_bytes(states, b, 0, _STATE_BYTES)
    _prefetch_bytes(params, b, 0, _PROFILE_START)
    _prefetch_bytes(params, b, _PROFILE_STOP, _PARAMS_BYTES)
    step = min(states[b].step, MAX_EPISODE_STEPS - 1)  # the load-profile entry ``arrivals`` reads
    prefetch(params, b, _PROFILE_START + step * _PROFILE_ENTRY_BYTES)


@inlined_kernel
def advance_row(b, stepping_row, params, states, actions, step_limit, node_obs, flag_obs, scalar_obs, step_obs,
                rewards, truncated, components, scores, errors):
    """Step cluster ``b`` if ``stepping_row``, then write its row of every output (inlined into
    the batch loops, ``_advance_rows`` and ``scenarios.episodes``' start-or-advance loop: a call
    with fourteen array arguments per cluster cost ~10 %)."""
    s = states[b]
    if stepping_row:
        step_cluster(params[b], s, actions[b])
        rewards[b] = s.reward
        truncated[b] = s.step >= step_limit[b]
    else:
        rewards[b] = 0.0
        truncated[b] = False
    write_observation(s, node_obs[:, b, :], flag_obs[:, b, :], scalar_obs[:, b, 0], step_obs[b])
    for k in range(N_REWARD_COMPONENTS):
        components[k, b] = s.reward_components[k]
    scores[b] = episode_score(s)
    errors[b] = s.action_errors


@inlined_kernel
def borrowed_all(params, states, actions, stepping, step_limit, node_obs, flag_obs, scalar_obs, step_obs, rewards,
                 truncated, components, scores, errors):
    """Every array of the batch loop as a ``borrowed`` array, so that the per-cluster views
    of them cost no reference counting (14 atomic pairs per cluster otherwise, that all
    threads of a parallel call contend for)."""
    return (borrowed(params), borrowed(states), borrowed(actions), borrowed(stepping), borrowed(step_limit),
            borrowed(node_obs), borrowed(flag_obs), borrowed(scalar_obs), borrowed(step_obs), borrowed(rewards),
            borrowed(truncated), borrowed(components), borrowed(scores), borrowed(errors))


@kernel
def _advance_rows(first, stop, params, states, actions, stepping, step_limit, node_obs, flag_obs, scalar_obs, step_obs,
                  rewards, truncated, components, scores, errors):
    """Advance clusters ``first`` to ``stop - 1`` in order: the whole batch (serial) or one
    thread's chunk of it (``_advance_parallel``)."""
    params, states, actions, stepping, step_limit, node_obs, flag_obs, scalar_obs, step_obs, rewards, truncated, \
        components, scores, errors = borrowed_all(params, states, actions, stepping, step_limit, node_obs, flag_obs,
                                                  scalar_obs, step_obs, rewards, truncated, components, scores, errors)
    for b in range(first, stop):
        prefetch_row(params, states, min(b + 1, stop - 1))
        advance_row(b, stepping[b], params, states, actions, step_limit, node_obs, flag_obs, scalar_obs, step_obs,
                    rewards, truncated, components, scores, errors)


@parallel_kernel
def _advance_parallel(chunks, params, states, actions, stepping, step_limit, node_obs, flag_obs, scalar_obs, step_obs,
                      rewards, truncated, components, scores, errors):
    """``_advance_rows`` over the batch split into ``chunks`` chunks (one per thread). The
    ``prange`` body must stay a call: with the cluster-step inlined into it, Numba's parfor
    transformations changed the results (caught by the bit-for-bit tests)."""
    n = states.shape[0]
    for c in prange(chunks):
        _advance_rows(c * n // chunks, (c + 1) * n // chunks, params, states, actions, stepping, step_limit, node_obs,
                      flag_obs, scalar_obs, step_obs, rewards, truncated, components, scores, errors)


def use_parallel(n: int, parallel: bool | None) -> bool:
    """Whether a batch of ``n`` clusters runs ``prange``-parallel (``None``: decide by size)."""
    return n >= PARALLEL_MIN_BATCH if parallel is None else bool(parallel)


def advance_batch(params, states, actions, stepping, step_limit, out: BatchOutputs, parallel: bool | None = None) -> None:
    """Step the clusters where ``stepping`` is True and observe all of them, in one call.

    Args:
        params, states: (N,) ``PARAMS_DTYPE`` / ``STATE_DTYPE``; ``states`` is updated in place.
        actions: (N, 4) int64, C-contiguous, already range-checked (``UNPARSABLE`` allowed).
        stepping: (N,) bool; clusters not stepped are only observed (reward 0, not truncated).
        step_limit: (N,) int64 step at which each episode is truncated.
        out: where the results go (``BatchOutputs.allocate(N)``).
        parallel: force the ``prange`` (True) or serial (False) kernel; ``None`` decides by N.
    """
    outputs = (out.node_obs, out.flag_obs, out.scalar_obs, out.step_obs, out.rewards, out.truncated,
               out.reward_components, out.scores, out.action_errors)
    if use_parallel(states.shape[0], parallel):
        _advance_parallel(numba.get_num_threads(), params, states, actions, stepping, step_limit, *outputs)
    else:
        _advance_rows(0, states.shape[0], params, states, actions, stepping, step_limit, *outputs)


def step_batch(params, states, actions, parallel: bool | None = None) -> None:
    """Step every cluster of a batch with its own action, in place (no observation): serial
    below ``PARALLEL_MIN_BATCH`` clusters, ``prange`` from there (or as ``parallel`` forces).
    ``actions`` is (N, 4) int64, already range-checked."""
    run = step_batch_parallel if use_parallel(states.shape[0], parallel) else step_batch_serial
    run(params, states, actions)
