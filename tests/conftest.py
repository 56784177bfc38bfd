"""Shared test setup: one Hypothesis profile for the suite and a single jit warm-up.

No sys.path edits: CI runs ``python -m pytest`` after ``pip install -e .``; pytest's default
import mode puts this directory on the path, which is how tests import ``reference``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Compiled kernels make the first example slow; deadlines would only measure Numba.
settings.register_profile(
    "dime",
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("dime")


@pytest.fixture(scope="session", autouse=True)
def jit_warm() -> None:
    """Compile (or load from cache) the step kernels once, before any test is timed."""
    import gymnasium as gym

    import dime_gym  # noqa: F401 - registers DIME-v0

    settings.load_profile("dime")
    env = gym.make("DIME-v0")
    env.reset(seed=0)
    env.step(np.zeros(4, dtype=np.int64))
    env.close()


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (two spin against each other on the shared 2-core machines)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
