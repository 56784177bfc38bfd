"""Log excerpts returned by ``query_logs``: a few deterministic lines about one node, built
from the true state, so investigating reveals what the metrics hide (a zombie's stuck
handlers, a leak that GC never reclaims, a pool that is running out)."""

from __future__ import annotations

import numpy as np

from dime_gym.core._jit import kernel
from dime_gym.core.state import DB, EVENT_NAMES, EVENT_NONE


@kernel
def _node_log_fields(states, row, node):
    """What the log lines of ``node`` in cluster ``row`` of ``states`` are built from, as one
    tuple (reading the fields of a record one by one from Python costs ~0.5 us each)."""
    s = states[row]
    return (s.step, s.failed[node], s.restart_left[node], s.last_event[node], s.cpu[node], s.mem[node], s.queue[node],
            s.served_rps[node], s.zombie[node], s.arrival_rps[node], s.split_brain[node], s.mem_leaked[node],
            s.overload_streak[node], s.db_pool_free, s.db_pool_leaking, s.io_wait, s.db_overload_streak)


def log_excerpt(states: np.ndarray, row: int, node: int) -> list[str]:
    """Up to five log lines about ``node`` at the current step of cluster ``row`` of the
    ``STATE_DTYPE`` array ``states``."""
    (step, failed, restart_left, last_event, cpu, mem, queue, served_rps, zombie, arrival_rps, split_brain, mem_leaked,
     overload_streak, db_pool_free, db_pool_leaking, io_wait, db_overload_streak) = _node_log_fields(states, row, node)
    role = "postgres" if node == DB else "worker"
    prefix = f"[step {step}] node-{node} ({role})"
    if failed:
        return [f"{prefix} status=CrashLoopBackOff last_event={EVENT_NAMES[last_event]}",
                f"{prefix} process not running; restart it to recover"]
    if restart_left > 0:
        return [f"{prefix} status=ContainerCreating restart completes in {restart_left} step(s)"]
    lines = [
        f"{prefix} status=Running cpu={cpu:.2f} mem={mem:.2f} queue={int(round(queue))} served_rps={served_rps:.1f}"
    ]
    if last_event != EVENT_NONE:
        lines.append(f"{prefix} last_event={EVENT_NAMES[last_event]}")
    if zombie:
        lines.append(f"{prefix} ERROR request handler stuck: 0 of {arrival_rps:.0f} rps answered, clients time out")
    if split_brain:
        lines.append(f"{prefix} ERROR replication: writes conflict with the primary (split brain); fence or restart this node")
    if mem_leaked > 0.05:
        lines.append(f"{prefix} WARN heap grows every step; {mem_leaked:.2f} of memory held by objects GC cannot reclaim")
    if overload_streak > 0:
        lines.append(f"{prefix} WARN saturated for {overload_streak} step(s); queue near capacity")
    if node == DB:
        pool_used = 1.0 - db_pool_free
        if db_pool_leaking or pool_used > 0.05:
            lines.append(f"{prefix} WARN connection pool {pool_used:.0%} held by idle-in-transaction sessions")
        if io_wait > 0.6:
            lines.append(f"{prefix} LOG io_wait={io_wait:.2f}: replication conflict, canceling statement")
        if db_overload_streak > 0:
            lines.append(f"{prefix} WARN demand above capacity for {db_overload_streak} step(s)")
    return lines[:5]
