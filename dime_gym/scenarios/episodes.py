"""Episode construction, compiled: a task code and an episode seed become a row's params, initial
state and facts, inside the kernels, so that resets and autoresets of any number of clusters cost
no Python per cluster.

An episode is: the healthy design point (``EpisodeTables`` templates), the task's length and
cloud credits, its fault written by its setup hook (``scenarios.faults``) from an episode
generator seeded by the episode seed, the cluster's own random streams seeded by the same seed,
and the observables the cluster shows before its first step (``settle_observables``: the same
latency mixture and p99 quantile as a step).

Where the episode seeds come from: each env row has a *reset stream* (a splitmix64 state). A
seeded reset sets it from the seed (``reset_stream_from_seed``); every episode started in the
row, by a reset or an autoreset, takes the stream's next draw as its episode seed
(``next_draw``). So a row's sequence of episodes depends only on its last reset seed, whether
it runs alone (``DimeEnv``) or in a batch (``DimeVectorEnv``).
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
from numba import prange

from dime_gym.core._jit import borrowed, kernel, parallel_kernel, stack_zeros
from dime_gym.core.batch import BatchOutputs, advance_row, borrowed_all, prefetch_row, use_parallel
from dime_gym.core.latency import P99_QUANTILE, db_io_wait, db_response_ms, mixture_quantile
from dime_gym.core.params import (
    CPU_BACKGROUND,
    MEM_BASELINE,
    MEM_DB_BASELINE,
    UTIL_CEILING,
    WORKER_SERVICE_MS,
    default_params,
)
from dime_gym.core.rng import mix64, write_seed_streams
from dime_gym.core.state import DB, ERROR_BUDGET_MAX, FIRST_WORKER, N_NODES, STATE_DTYPE
from dime_gym.scenarios.faults import run_setup_hook

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_RESET_SALT = np.uint64(0x5EED5EED0D1EC0DE)  # reset streams are not the episode seeds' stream
_EPISODE_SALT = np.uint64(0xE915D0DE0D1E0000)  # the episode generator: not the cluster's streams


@dataclasses.dataclass(frozen=True)
class EpisodeTables:
    """What a compiled episode start reads besides the task code and seed: per task code, the
    episode length and cloud credits; the healthy params and state templates ((1,) records)."""

    episode_steps: np.ndarray  # (K,) int64
    cloud_credits: np.ndarray  # (K,) float64
    params_template: np.ndarray  # (1,) PARAMS_DTYPE
    state_template: np.ndarray  # (1,) STATE_DTYPE

    def as_tuple(self) -> tuple:
        return (self.episode_steps, self.cloud_credits, self.params_template, self.state_template)


def healthy_state_template() -> np.ndarray:
    """A (1,) ``STATE_DTYPE`` array at the healthy design point (random streams unset)."""
    s = np.zeros(1, dtype=STATE_DTYPE)
    s["route_weight"][0, FIRST_WORKER:] = 1.0
    s["throttle_rate"] = 1.0
    s["error_budget"] = ERROR_BUDGET_MAX
    s["db_pool_free"] = 1.0
    s["mem"][0, DB] = MEM_DB_BASELINE + 0.1
    s["mem"][0, FIRST_WORKER:] = MEM_BASELINE + 0.15
    return s


def make_tables(episode_steps, cloud_credits) -> EpisodeTables:
    """The tables for task codes ``0..K-1`` with these lengths and credits."""
    return EpisodeTables(np.asarray(episode_steps, dtype=np.int64), np.asarray(cloud_credits, dtype=np.float64),
                         default_params().reshape(1), healthy_state_template())


# --- seeds ----------------------------------------------------------------------------------------
@kernel
def reset_stream_from_seed(seed):
    """The reset stream a row starts from after ``reset(seed=seed)`` (``seed`` a uint64)."""
    return mix64(seed ^ _RESET_SALT)


@kernel
def next_draw(streams, row):
    """Advance ``streams[row]`` (splitmix64) and return its next uint64 draw."""
    streams[row] = streams[row] + _GOLDEN
    return mix64(streams[row])


# --- one episode ----------------------------------------------------------------------------------
@kernel
def settle_observables(p, s):
    """Fill the reset observation of ``s`` from the step-0 load of ``p`` (no queues yet): what
    the cluster shows before its first step, through the same latency model as a step."""
    offered = p.base_rate_rps * p.load_profile[0]
    weight_sum = 0.0
    for i in range(FIRST_WORKER, N_NODES):
        weight_sum += s.route_weight[i]
    scratch = stack_zeros(3, N_NODES)  # no heap allocation per episode start
    share, wait_ms, mean_ms = scratch[0], scratch[1], scratch[2]
    db_util = min(1.0, offered / p.db_capacity_rps)  # (no split brain before the first step)
    s.cpu[DB] = CPU_BACKGROUND + (1 - CPU_BACKGROUND) * db_util
    s.db_util = db_util
    s.io_wait = db_io_wait(db_util, 0.0)
    db_ms = db_response_ms(db_util, s.io_wait)
    latency_mean = 0.0
    for i in range(FIRST_WORKER, N_NODES):
        share[i] = s.route_weight[i] / weight_sum
        rho = min(1.0, offered * share[i] / p.worker_capacity_rps)
        s.cpu[i] = CPU_BACKGROUND + (1 - CPU_BACKGROUND) * rho
        mean_ms[i] = WORKER_SERVICE_MS / (1 - min(rho, UTIL_CEILING)) + db_ms
        latency_mean += share[i] * mean_ms[i]
    s.offered_rps = offered
    s.admitted_rps = offered
    s.latency_mean_ms = latency_mean
    s.latency_p99_ms = mixture_quantile(P99_QUANTILE, share, wait_ms, mean_ms, N_NODES)


@kernel
def start_episode(b, code, episode_seed, params, states, start_states, facts, step_limit, max_episode_steps,
                  tables, trace_load):
    """Start an episode of task ``code`` from ``episode_seed`` (uint64) in row ``b``: its params,
    state (also copied to ``start_states[b]``), facts and step limit."""
    task_steps, task_credits, params_template, state_template = tables
    params[b] = params_template[0]
    states[b] = state_template[0]
    p = params[b]
    s = states[b]
    p.episode_steps = task_steps[code]
    p.initial_cloud_credits = task_credits[code]
    s.cloud_credits = task_credits[code]
    write_seed_streams(s.rng, episode_seed)
    g = np.empty(1, dtype=np.uint64)
    g[0] = mix64(episode_seed ^ _EPISODE_SALT)
    row_facts = facts[b]
    row_facts[:] = 0
    run_setup_hook(code, g, p, s, row_facts, trace_load)
    settle_observables(p, s)
    start_states[b] = states[b]
    step_limit[b] = min(p.episode_steps, max_episode_steps)


@kernel
def _restart_rows(first, stop, restarting, codes, streams, params, states, start_states, facts, step_limit,
                  max_episode_steps, tables, trace_load):
    """Start a new episode in each row from ``first`` to ``stop - 1`` where ``restarting``: the
    whole batch (serial) or one thread's chunk of it (``_restart_parallel``)."""
    for b in range(first, stop):
        if restarting[b]:
            start_episode(b, codes[b], next_draw(streams, b), params, states, start_states, facts, step_limit,
                          max_episode_steps, tables, trace_load)


@parallel_kernel
def _restart_parallel(chunks, restarting, codes, streams, params, states, start_states, facts, step_limit,
                      max_episode_steps, tables, trace_load):
    """``_restart_rows`` over the batch split into ``chunks`` chunks (one per thread; the
    ``prange`` body stays a call, as in ``core.batch._advance_parallel``)."""
    n = restarting.shape[0]
    for c in prange(chunks):
        _restart_rows(c * n // chunks, (c + 1) * n // chunks, restarting, codes, streams, params, states, start_states,
                      facts, step_limit, max_episode_steps, tables, trace_load)


def restart_rows(restarting, codes, streams, params, states, start_states, facts, step_limit, max_episode_steps: int,
                 tables: EpisodeTables, trace_load, parallel: bool) -> None:
    """Start a new episode in every row where ``restarting`` (N,) is True: task ``codes[b]``,
    episode seed the next draw of ``streams[b]`` (advanced), in one compiled call."""
    args = (restarting, codes, streams, params, states, start_states, facts, step_limit, max_episode_steps,
            tables.as_tuple(), trace_load)
    if parallel:
        _restart_parallel(numba.get_num_threads(), *args)
    else:
        _restart_rows(0, restarting.shape[0], *args)


# --- episode starts inside the batched step (autoresets) -----------------------------------------
@kernel
def _start_or_advance_rows(first, stop, restarting, codes, task_codes, streams, start_states, facts, max_episode_steps,
                           tables, trace_load, params, states, actions, step_limit, node_obs, flag_obs, scalar_obs,
                           step_obs, rewards, truncated, components, scores, errors):
    """Rows ``first`` to ``stop - 1``: where ``restarting``, a new episode of task ``codes[b]``
    (as ``_restart_rows`` starts it, then observed, not stepped); elsewhere one step with
    ``actions[b]``; then every row's outputs (``core.batch.advance_row``). Returns how many of
    the restarted rows changed task (``task_codes`` is updated)."""
    params, states, actions, restarting, step_limit, node_obs, flag_obs, scalar_obs, step_obs, rewards, truncated, \
        components, scores, errors = borrowed_all(params, states, actions, restarting, step_limit, node_obs, flag_obs,
                                                  scalar_obs, step_obs, rewards, truncated, components, scores, errors)
    codes, task_codes, streams, start_states, facts = (borrowed(codes), borrowed(task_codes), borrowed(streams),
                                                       borrowed(start_states), borrowed(facts))
    retasked = 0
    for b in range(first, stop):
        prefetch_row(params, states, min(b + 1, stop - 1))
        restart = restarting[b]
        if restart:
            if task_codes[b] != codes[b]:
                task_codes[b] = codes[b]
                retasked += 1
            start_episode(b, codes[b], next_draw(streams, b), params, states, start_states, facts, step_limit,
                          max_episode_steps, tables, trace_load)
        advance_row(b, not restart, params, states, actions, step_limit, node_obs, flag_obs, scalar_obs, step_obs,
                    rewards, truncated, components, scores, errors)
    return retasked


@parallel_kernel
def _start_or_advance_parallel(chunks, restarting, codes, task_codes, streams, start_states, facts, max_episode_steps,
                               tables, trace_load, params, states, actions, step_limit, node_obs, flag_obs, scalar_obs,
                               step_obs, rewards, truncated, components, scores, errors):
    """``_start_or_advance_rows`` over the batch split into ``chunks`` chunks (one per thread)."""
    n = restarting.shape[0]
    retasked = 0
    for c in prange(chunks):
        retasked += _start_or_advance_rows(c * n // chunks, (c + 1) * n // chunks, restarting, codes, task_codes,
                                           streams, start_states, facts, max_episode_steps, tables, trace_load, params,
                                           states, actions, step_limit, node_obs, flag_obs, scalar_obs, step_obs,
                                           rewards, truncated, components, scores, errors)
    return retasked


def start_or_advance_rows(restarting, codes, task_codes, streams, start_states, facts, max_episode_steps: int,
                          tables: EpisodeTables, trace_load, params, states, actions, step_limit, out: BatchOutputs,
                          parallel: bool | None = None) -> int:
    """In one compiled call: a new episode in every row where ``restarting`` (N,) is True (task
    ``codes[b]``, seed the next draw of ``streams[b]``, as ``restart_rows``), one step of every
    other row with its ``actions`` row, and every row's outputs into ``out`` (as
    ``core.batch.advance_batch``: a restarted row reports reward 0, not truncated, its first
    observation). ``parallel`` as for ``advance_batch`` (``None``: decide by size). Returns how
    many restarted rows changed task (``task_codes`` is updated)."""
    args = (restarting, codes, task_codes, streams, start_states, facts, max_episode_steps, tables.as_tuple(),
            trace_load, params, states, actions, step_limit, out.node_obs, out.flag_obs, out.scalar_obs, out.step_obs,
            out.rewards, out.truncated, out.reward_components, out.scores, out.action_errors)
    if use_parallel(restarting.shape[0], parallel):
        return _start_or_advance_parallel(numba.get_num_threads(), *args)
    return _start_or_advance_rows(0, restarting.shape[0], *args)
