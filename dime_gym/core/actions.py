"""Action encoding and the kernel that applies one action to one cluster.

An action is an ``int64`` vector ``[kind, node, dest, rate_level]`` (the env's
``MultiDiscrete([6, 8, 8, 21])``):

===========  ======  ===============================================================
kind         value   uses
===========  ======  ===============================================================
no_op        0       nothing
restart      1       ``node``: take it down for ``RESTART_STEPS``, clear memory/queue
reroute      2       ``node`` -> ``dest``: move half of node's routing weight (workers)
scale_up     3       add one temporary replica (cold start, TTL, one cloud credit)
throttle     4       admit ``rate_level / 20`` of ingress from now on
query_logs   5       ``node``: telemetry visible for a few steps + a log excerpt
===========  ======  ===============================================================

Fields a kind does not use are ignored. Invalid targets change nothing and set bits in the
returned ``ERR_*`` mask (reported as ``info["action_errors"]``).

The kernels also take kind ``UNPARSABLE`` (-1), outside the public action space: an agent's
answer that held no valid command. It acts as a no-op that is charged as an invalid action
(``ERR_UNPARSABLE``), so the text interface, the batched env and reward scoring all give an
unparsable answer the same outcome.
"""

from __future__ import annotations

import functools

import numpy as np

from dime_gym.core._jit import inlined_kernel, kernel
from dime_gym.core.nodes import is_serving
from dime_gym.core.params import (
    MEM_AFTER_RESTART,
    RESTART_COOLDOWN_STEPS,
    RESTART_STEPS,
    QUERY_LOGS_VISIBLE_STEPS,
    REROUTE_FRACTION,
)
from dime_gym.core.state import DB, EVENT_RESTARTING, FIRST_WORKER, MAX_REPLICAS, N_NODES

NO_OP, RESTART, REROUTE, SCALE_UP, THROTTLE, QUERY_LOGS = 0, 1, 2, 3, 4, 5
UNPARSABLE = -1  # kernel-only kind: an answer with no valid command (a charged no-op)
UNPARSABLE_NAME = "unparsable"  # how prompts, logs and reports name kind UNPARSABLE
ACTION_KINDS = ("no_op", "restart", "reroute", "scale_up", "throttle", "query_logs")
N_ACTION_KINDS = len(ACTION_KINDS)
RATE_LEVELS = 21  # throttle rates 0.00, 0.05, ..., 1.00
ACTION_NVEC = np.array([N_ACTION_KINDS, N_NODES, N_NODES, RATE_LEVELS], dtype=np.int64)

ERR_NODE_RESTARTING = 1 << 0
ERR_RESTART_COOLDOWN = 1 << 1
ERR_REROUTE_SAME_NODE = 1 << 2
ERR_REROUTE_NOT_WORKER = 1 << 3
ERR_REROUTE_TO_UNAVAILABLE = 1 << 4
ERR_NO_CLOUD_CREDITS = 1 << 5
ERR_NO_REPLICA_SLOT = 1 << 6
ERR_ERROR_BUDGET_EXHAUSTED = 1 << 7
ERR_UNPARSABLE = 1 << 8

ERROR_MESSAGES = {
    ERR_NODE_RESTARTING: "RestartInProgress: node-{node} is already restarting",
    ERR_RESTART_COOLDOWN: "CooldownActive: node-{node} was restarted recently; wait for its cooldown",
    ERR_REROUTE_SAME_NODE: "InvalidReroute: source and destination are both node-{node}",
    ERR_REROUTE_NOT_WORKER: "InvalidReroute: only worker nodes 1-7 take routed traffic (got node-{node} -> node-{dest})",
    ERR_REROUTE_TO_UNAVAILABLE: "InvalidReroute: destination node-{dest} is failed or restarting",
    ERR_NO_CLOUD_CREDITS: "InsufficientFunds: no cloud credits left for a scale-up",
    ERR_NO_REPLICA_SLOT: "ScaleLimit: all replica slots are in use",
    ERR_ERROR_BUDGET_EXHAUSTED: "ErrorBudgetExhausted: the SLO error budget is empty; a throttle may only be loosened",
    ERR_UNPARSABLE: "ParseError: the answer held no valid command; nothing was done",
}

# Friction (action cost) by kind, before the invalid-action surcharge.
FRICTION_BY_KIND = np.array([0.0, 0.10, 0.02, 0.20, 0.02, 0.02])
FRICTION_DB_RESTART_EXTRA = 0.10
FRICTION_RESTART_FAILED = 0.02  # restarting a node that is already down disrupts nothing: a recovery
FRICTION_INVALID = 0.25


def rate_from_level(level: int) -> float:
    """Throttle admitted fraction of a rate level (0..20)."""
    return level / (RATE_LEVELS - 1)


def level_from_rate(rate: float) -> int:
    """Nearest rate level of an admitted fraction in [0, 1]."""
    return int(round(float(rate) * (RATE_LEVELS - 1)))


def describe_errors(mask: int, action) -> list[str]:
    """Human-readable messages for the bits of an ``ERR_*`` mask (a fresh list)."""
    return list(_error_messages(mask, int(action[1]), int(action[2])))


@functools.lru_cache(maxsize=4096)
def _error_messages(mask: int, node: int, dest: int) -> tuple[str, ...]:
    return tuple(msg.format(node=node, dest=dest) for bit, msg in ERROR_MESSAGES.items() if mask & bit)


@kernel
def begin_restart(s, node):
    """Take ``node`` down for ``RESTART_STEPS``: memory, queue, faults and backoff cleared.
    A manual restart reschedules the pod, so it also cures a crash loop (see ``tick_timers``)."""
    s.restart_left[node] = RESTART_STEPS
    s.auto_restart_left[node] = 0
    s.failed[node] = 0
    s.zombie[node] = 0
    s.split_brain[node] = 0
    s.queue[node] = 0.0
    s.mem[node] = MEM_AFTER_RESTART
    s.mem_leaked[node] = 0.0
    s.cpu[node] = 0.0
    s.overload_streak[node] = 0
    s.last_event[node] = EVENT_RESTARTING
    if node == DB:
        s.db_pool_free = 1.0
        s.db_pool_leaking = 0
        s.db_overload_streak = 0


@inlined_kernel
def apply_action(p, s, action):
    """Apply ``action`` to state record ``s`` in place.

    Args:
        p: ``PARAMS_DTYPE`` record (replica timings).
        s: ``STATE_DTYPE`` record, modified in place.
        action: ``(4,) int64`` ``[kind, node, dest, rate_level]``, already range-checked
            (kind may be ``UNPARSABLE``).

    Returns:
        ``(errors, friction)``: the ``ERR_*`` bitmask and the action's friction cost.
    """
    kind = action[0]
    node = action[1]
    dest = action[2]
    errors = 0
    if kind == UNPARSABLE:
        errors |= ERR_UNPARSABLE
        kind = NO_OP
    # a restart that kubelet began in this very step's timer tick (the agent saw the node down)
    restarted_by_kubelet = s.restart_left[node] == RESTART_STEPS  # (a manual one has ticked down since)
    was_down = s.failed[node] == 1
    if kind == RESTART:
        if restarted_by_kubelet:
            pass  # what was asked is already under way: nothing to do, nothing to charge
        elif s.restart_left[node] > 0:
            errors |= ERR_NODE_RESTARTING
        elif s.cooldown_left[node] > 0:
            errors |= ERR_RESTART_COOLDOWN
        else:
            begin_restart(s, node)
            s.cooldown_left[node] = RESTART_COOLDOWN_STEPS
    elif kind == REROUTE:
        if node == dest:
            errors |= ERR_REROUTE_SAME_NODE
        elif node < FIRST_WORKER or dest < FIRST_WORKER:
            errors |= ERR_REROUTE_NOT_WORKER
        elif not is_serving(s, dest):
            errors |= ERR_REROUTE_TO_UNAVAILABLE
        else:
            moved = REROUTE_FRACTION * s.route_weight[node]
            s.route_weight[node] -= moved
            s.route_weight[dest] += moved
    elif kind == SCALE_UP:
        slot = -1
        for r in range(MAX_REPLICAS):
            if s.replica_ttl_left[r] == 0:
                slot = r
                break
        if s.cloud_credits < 1.0:
            errors |= ERR_NO_CLOUD_CREDITS
        elif slot < 0:
            errors |= ERR_NO_REPLICA_SLOT
        else:
            s.replica_cold_left[slot] = p.replica_cold_steps
            s.replica_ttl_left[slot] = p.replica_ttl_steps
            s.cloud_credits -= 1.0
            s.credits_spent += 1.0
    elif kind == THROTTLE:
        rate = action[3] / (RATE_LEVELS - 1)
        if s.error_budget <= 0.0 and rate < s.throttle_rate:
            errors |= ERR_ERROR_BUDGET_EXHAUSTED  # an empty budget allows loosening only
        else:
            s.throttle_rate = rate
    elif kind == QUERY_LOGS:
        s.visible_left[node] = QUERY_LOGS_VISIBLE_STEPS
        s.dropped[node] = 0

    friction = FRICTION_BY_KIND[kind]
    if kind == RESTART:
        if restarted_by_kubelet:
            friction = 0.0
        elif was_down:
            friction = FRICTION_RESTART_FAILED
        elif node == DB:
            friction += FRICTION_DB_RESTART_EXTRA
    if errors != 0:
        friction += FRICTION_INVALID
        s.n_invalid_actions += 1
    elif kind != NO_OP and kind != QUERY_LOGS:
        s.n_actions += 1
    s.action_errors = errors
    s.last_action_kind = kind
    return errors, friction
