"""The kernels also run as plain Python (``NUMBA_DISABLE_JIT=1``: coverage and a debugger inside
the physics), and that run gives the compiled run's results bit for bit: the same
observations, rewards, infos and snapshots from the single env, the vector env (across an
autoreset) and counterfactual scoring."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

TESTS_DIR = Path(__file__).resolve().parent
TASKS = ("healthy", "retry_storm", "zombie_node", "split_brain_io_bottleneck", "memory_leak_slow_burn",
         "connection_pool_deadlock", "black_swan_az_failure")
STEPS = 30  # faults strike from step 3 on


def trajectories() -> dict:
    """A few short episodes with seeded random actions; everything they return, by name."""
    from dime_gym.counterfactual import score_actions
    from dime_gym.env import DimeEnv
    from dime_gym.vector import DimeVectorEnv

    rng = np.random.default_rng(14)
    nvec = [6, 8, 8, 21]
    out = {}
    for task in TASKS:
        env = DimeEnv(task=task, with_oracle=False)
        steps = [env.reset(seed=3)]
        steps += [env.step(rng.integers(0, nvec)) for _ in range(STEPS)]
        out[task] = steps
        out[f"{task}/snapshot"] = env.snapshot()
    vector = DimeVectorEnv(num_envs=len(TASKS), task=list(TASKS), max_episode_steps=5)
    steps = [vector.reset(seed=5)]
    steps += [vector.step(rng.integers(0, nvec, size=(len(TASKS), 4))) for _ in range(7)]  # spans an autoreset
    out["vector"] = steps
    scores = score_actions(out["retry_storm/snapshot"], rng.integers(0, nvec, size=(4, 4)), horizon=3, continuation="noop")
    out["counterfactual"] = dataclasses.asdict(scores)
    return out


def _interpreted_trajectories() -> tuple[bool, dict]:
    """``(kernels were plain Python, trajectories())`` from a fresh process with the JIT off."""
    code = ("import pickle, sys; sys.path.insert(0, sys.argv[1]); import test_jit_off as t; "
            "from dime_gym.core import dynamics; "
            "sys.stdout.buffer.write(pickle.dumps((type(dynamics.step_cluster).__name__ == 'function', t.trajectories())))")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-c", code, str(TESTS_DIR)], capture_output=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return pickle.loads(done.stdout)


def first_difference(a, b, path: str = "") -> str | None:
    """Where ``a`` and ``b`` first differ (types, keys, shapes, dtypes or bits), or ``None``."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{path}/{k}"))), None)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        return next((d for k, (x, y) in enumerate(zip(a, b)) if (d := first_difference(x, y, f"{path}[{k}]"))), None)
    if isinstance(a, (np.ndarray, np.generic)):
        if a.dtype != b.dtype or np.shape(a) != np.shape(b) or pickle.dumps(a) != pickle.dumps(b):
            return f"{path}: {a!r} != {b!r}"
        return None
    if isinstance(a, float):
        return None if a.hex() == b.hex() else f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def test_jit_off__interpreted_kernels_give_the_compiled_bits():
    interpreted, slow = _interpreted_trajectories()
    assert interpreted  # the subprocess really ran the kernels as Python
    fast = trajectories()
    assert first_difference(fast, slow) is None, first_difference(fast, slow)


def test_jit_off__first_difference_finds_one_flipped_bit():
    a = {"x": [np.array([1.0, 2.0])], "r": 0.1}
    b = {"x": [np.array([1.0, np.nextafter(2.0, 3.0)])], "r": 0.1}
    assert first_difference(a, a) is None
    assert first_difference(a, b).startswith("/x[0]")
    assert first_difference({"r": 0.1}, {"r": float(np.nextafter(0.1, 1.0))}) == "/r: 0.1 != 0.10000000000000002"
