"""What the agent can see: per-node telemetry dropout drawn from its own RNG stream.

Each node's telemetry is a two-state Markov chain (visible <-> dropped) with
``dropout_prob`` and ``dropout_recover_prob`` per step; a ``query_logs`` forces it visible
for a few steps. Exactly one uniform is drawn per node per step from the telemetry stream,
whatever the branch, so the stream position never depends on the agent's actions and the
dynamics stream is never touched.
"""

from __future__ import annotations

from dime_gym.core._jit import inlined_kernel, kernel
from dime_gym.core.rng import STREAM_TELEMETRY, next_uniform
from dime_gym.core.state import N_NODES


@inlined_kernel
def update_dropout(p, s):
    """Advance every node's dropout state by one step (in place)."""
    for i in range(N_NODES):
        u = next_uniform(s.rng, STREAM_TELEMETRY)
        # selects, not branches: u is random, so a branch on it would be mispredicted often
        forced_visible = s.visible_left[i] > 0  # a query_logs keeps it visible a few steps
        was_dropped = s.dropped[i] == 1
        switches = u < (p.dropout_recover_prob if was_dropped else p.dropout_prob)
        s.visible_left[i] -= 1 if forced_visible else 0
        s.dropped[i] = 0 if forced_visible else int(was_dropped != switches)
