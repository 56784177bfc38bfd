"""Log excerpts returned by ``query_logs``: a few deterministic lines about one node, built
from the true state, so investigating reveals what the metrics hide (a zombie's stuck
handlers, a leak that GC never reclaims, a pool that is running out)."""

from __future__ import annotations

from dime_gym.core.state import DB, EVENT_NAMES, EVENT_NONE


def log_excerpt(s, node: int) -> list[str]:
    """Up to five log lines about ``node`` at the current step of state record ``s``."""
    step = int(s["step"])
    role = "postgres" if node == DB else "worker"
    prefix = f"[step {step}] node-{node} ({role})"
    if s["failed"][node]:
        event = EVENT_NAMES[int(s["last_event"][node])]
        return [f"{prefix} status=CrashLoopBackOff last_event={event}", f"{prefix} process not running; restart it to recover"]
    if s["restart_left"][node] > 0:
        return [f"{prefix} status=ContainerCreating restart completes in {int(s['restart_left'][node])} step(s)"]
    lines = [
        f"{prefix} status=Running cpu={s['cpu'][node]:.2f} mem={s['mem'][node]:.2f} "
        f"queue={int(round(s['queue'][node]))} served_rps={s['served_rps'][node]:.1f}"
    ]
    if s["last_event"][node] != EVENT_NONE:
        lines.append(f"{prefix} last_event={EVENT_NAMES[int(s['last_event'][node])]}")
    if s["zombie"][node]:
        lines.append(f"{prefix} ERROR request handler stuck: 0 of {s['arrival_rps'][node]:.0f} rps answered, clients time out")
    if s["split_brain"][node]:
        lines.append(f"{prefix} ERROR replication: writes conflict with the primary (split brain); fence or restart this node")
    if s["mem_leaked"][node] > 0.05:
        lines.append(f"{prefix} WARN heap grows every step; {s['mem_leaked'][node]:.2f} of memory held by objects GC cannot reclaim")
    if s["overload_streak"][node] > 0:
        lines.append(f"{prefix} WARN saturated for {int(s['overload_streak'][node])} step(s); queue near capacity")
    if node == DB:
        pool_used = 1.0 - float(s["db_pool_free"])
        if s["db_pool_leaking"] or pool_used > 0.05:
            lines.append(f"{prefix} WARN connection pool {pool_used:.0%} held by idle-in-transaction sessions")
        if s["io_wait"] > 0.6:
            lines.append(f"{prefix} LOG io_wait={s['io_wait']:.2f}: replication conflict, canceling statement")
        if s["db_overload_streak"] > 0:
            lines.append(f"{prefix} WARN demand above capacity for {int(s['db_overload_streak'])} step(s)")
    return lines[:5]
