"""Node status: the one definition of "serving".

A node serves (takes traffic, burns CPU, counts as up) when it is neither crashed
(``failed``) nor restarting (``restart_left > 0``). The physics, the observation, the action
checks and the reward all ask ``is_serving``; Python code that reads state records (reports,
pictures) asks ``serving_mask``, its NumPy form over any array of records (tests keep the
two equal).
"""

from __future__ import annotations

import numpy as np

from dime_gym.core._jit import kernel


@kernel
def is_serving(s, i):
    """True if node ``i`` of ``STATE_DTYPE`` record ``s`` is neither crashed nor restarting."""
    return s.failed[i] == 0 and s.restart_left[i] == 0


def serving_mask(state: np.ndarray) -> np.ndarray:
    """``is_serving`` for every node of a ``STATE_DTYPE`` record or array of records: a bool
    array of shape ``state.shape + (N_NODES,)``."""
    return (state["failed"] == 0) & (state["restart_left"] == 0)
