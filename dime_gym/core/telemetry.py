"""What the agent can see: per-node telemetry dropout drawn from its own RNG stream.

Each node's telemetry is a two-state Markov chain (visible <-> dropped) with
``dropout_prob`` and ``dropout_recover_prob`` per step; a ``query_logs`` forces it visible
for a few steps. Every step draws one 16-bit uniform per node from the telemetry stream (one
64-bit draw serves four nodes), whatever the branch, so the stream position never depends on
the agent's actions and the dynamics stream is never touched.
"""

from __future__ import annotations

import numpy as np

from dime_gym.core._jit import inlined_kernel
from dime_gym.core.rng import STREAM_TELEMETRY, next_bits
from dime_gym.core.state import N_NODES

NODES_PER_DRAW = 4  # 16 random bits per node: probabilities resolve to 1 / 65,536
_BITS_PER_NODE = np.uint64(16)
_NODE_BITS = np.uint64(0xFFFF)
_INV_2_16 = 1.0 / 65536.0


@inlined_kernel
def update_dropout(p, s):
    """Advance every node's dropout state by one step (in place)."""
    bits = np.uint64(0)
    for i in range(N_NODES):
        if i % NODES_PER_DRAW == 0:
            bits = next_bits(s.rng, STREAM_TELEMETRY)
        u = float(bits & _NODE_BITS) * _INV_2_16
        bits = bits >> _BITS_PER_NODE
        # selects, not branches: u is random, so a branch on it would be mispredicted often
        forced_visible = s.visible_left[i] > 0  # a query_logs keeps it visible a few steps
        was_dropped = s.dropped[i] == 1
        switches = u < (p.dropout_recover_prob if was_dropped else p.dropout_prob)
        s.visible_left[i] -= 1 if forced_visible else 0
        s.dropped[i] = 0 if forced_visible else int(was_dropped != switches)
