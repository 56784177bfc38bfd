"""(e) Memory per cluster in a batch: the bytes of the two records the kernels step, and the
memory a ``DimeVectorEnv`` allocates per sub-env (records, per-sub-env generator and facts,
one step's outputs), measured with ``tracemalloc`` against CartPole's native vector env at the
same size in the same run. Also a snapshot's size and a single ``DimeEnv``.

    python benchmarks/bench_memory.py [--num-envs 16384]
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import gymnasium as gym
import numpy as np

import dime_gym  # noqa: F401 - registers DIME-v0
from benchutil import machine, print_table
from dime_gym import TASK_IDS
from dime_gym.core.state import PARAMS_DTYPE, STATE_DTYPE


def allocated_bytes(build) -> tuple[int, object]:
    """Bytes still allocated (per ``tracemalloc``) after ``build()``, and what it built."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    obj = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, obj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-envs", type=int, default=16384)
    args = parser.parse_args()
    n = args.num_envs
    tasks = [TASK_IDS[i % len(TASK_IDS)] for i in range(n)]
    gym.make("DIME-v0").reset(seed=0)  # import and load kernels outside the measurement

    def dime_vector():
        envs = gym.make_vec("DIME-v0", num_envs=n, vectorization_mode="vector_entry_point", task=tasks)
        envs.reset(seed=0)
        return envs

    def cartpole_vector():
        envs = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
        envs.reset(seed=0)
        return envs

    dime_bytes, dime = allocated_bytes(dime_vector)
    step_bytes, _ = allocated_bytes(lambda: dime.step(np.zeros((n, 4), dtype=np.int64)))
    cartpole_bytes, cartpole = allocated_bytes(cartpole_vector)
    cartpole_step_bytes, _ = allocated_bytes(lambda: cartpole.step(np.zeros(n, dtype=np.int64)))

    def single():
        env = gym.make("DIME-v0")
        env.reset(seed=0)
        return env

    single_bytes, env = allocated_bytes(single)
    snapshot = env.unwrapped.snapshot()
    record_bytes = PARAMS_DTYPE.itemsize + STATE_DTYPE.itemsize
    per_env, per_cartpole = dime_bytes / n, cartpole_bytes / n
    print(machine())
    print(f"tracemalloc, {n} sub-envs")
    print_table(("what", "bytes", "x CartPole vector env per sub-env"), [
        ("CartPole vector env, per sub-env (after reset)", f"{per_cartpole:,.0f}", "1.0"),
        ("DIME vector env, per sub-env (after reset)", f"{per_env:,.0f}", f"{per_env / per_cartpole:.1f}"),
        ("  of which params + state records (what the kernels read)", f"{record_bytes:,}", f"{record_bytes / per_cartpole:.1f}"),
        ("CartPole step outputs, per sub-env", f"{cartpole_step_bytes / n:,.0f}", ""),
        ("DIME step outputs (obs, rewards, infos), per sub-env", f"{step_bytes / n:,.0f}", ""),
        ("DIME snapshot", f"{len(snapshot):,}", ""),
        ("one DimeEnv through gym.make (after reset)", f"{single_bytes:,}", ""),
    ])


if __name__ == "__main__":
    main()
