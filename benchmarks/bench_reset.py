"""(c) Reset time of DIME-v0 vs CartPole-v1, both through ``gym.make``, side by side
(interleaved rounds, median): ``reset()`` (the next episode from the env's own generator, what
training loops and autoresets do) and ``reset(seed=k)`` (a fresh generator each time). Also
the slowest task's reset, a vector sub-env's reset, and snapshot size and restore time.

    python benchmarks/bench_reset.py [--rounds 7] [--resets 2000]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import dime_gym  # noqa: F401 - registers DIME-v0
from benchutil import OtherLoad, interleaved, machine, print_table
from dime_gym import TASK_IDS


def seconds_per_reset(env, resets: int, seeded: bool) -> float:
    start = time.perf_counter()
    for k in range(resets):
        env.reset(seed=k) if seeded else env.reset()
    return (time.perf_counter() - start) / resets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--resets", type=int, default=2000)
    args = parser.parse_args()
    cartpole = gym.make("CartPole-v1")
    dime = gym.make("DIME-v0", task="retry_storm")
    for env in (cartpole, dime):
        env.reset(seed=0)
    variants = {
        "CartPole-v1 reset()": lambda: seconds_per_reset(cartpole, args.resets, False),
        "DIME-v0 reset()": lambda: seconds_per_reset(dime, args.resets, False),
        "CartPole-v1 reset(seed=k)": lambda: seconds_per_reset(cartpole, args.resets, True),
        "DIME-v0 reset(seed=k)": lambda: seconds_per_reset(dime, args.resets, True),
    }
    with OtherLoad() as load:
        medians = interleaved(variants, args.rounds)
        per_task = {}
        for task in TASK_IDS:
            env = gym.make("DIME-v0", task=task)
            env.reset(seed=0)
            per_task[task] = min(seconds_per_reset(env, args.resets // 10, False) for _ in range(3))
        vec = gym.make_vec("DIME-v0", num_envs=1024, vectorization_mode="vector_entry_point",
                           task=[TASK_IDS[i % len(TASK_IDS)] for i in range(1024)])
        vec.reset(seed=0)
        mask = np.ones(1024, dtype=np.bool_)
        t0 = time.perf_counter()
        vec.reset(options={"reset_mask": mask})
        vector_reset = (time.perf_counter() - t0) / 1024
        dime.reset(seed=0)
        for _ in range(10):
            dime.step(np.zeros(4, dtype=np.int64))
        snap = dime.unwrapped.snapshot()
        t0 = time.perf_counter()
        for _ in range(args.resets):
            dime.unwrapped.restore(snap)
        restore = (time.perf_counter() - t0) / args.resets
    print(machine())
    print(f"{args.rounds} interleaved rounds of {args.resets} resets, medians; {load.summary()}")
    rows = []
    for seeded in ("reset()", "reset(seed=k)"):
        base = medians[f"CartPole-v1 {seeded}"]
        rows.append((f"CartPole-v1 {seeded}", f"{base * 1e6:.1f}", "1.00"))
        rows.append((f"DIME-v0 {seeded} (retry_storm)", f"{medians[f'DIME-v0 {seeded}'] * 1e6:.1f}",
                     f"{medians[f'DIME-v0 {seeded}'] / base:.2f}"))
    slowest = max(per_task, key=per_task.get)
    base = medians["CartPole-v1 reset()"]
    rows.append((f"DIME-v0 reset(), slowest task ({slowest})", f"{per_task[slowest] * 1e6:.1f}", f"{per_task[slowest] / base:.2f}"))
    rows.append(("DIME-v0 reset(), mean over the 14 tasks", f"{np.mean(list(per_task.values())) * 1e6:.1f}",
                 f"{np.mean(list(per_task.values())) / base:.2f}"))
    rows.append(("DimeVectorEnv reset, per sub-env (1024, mixed)", f"{vector_reset * 1e6:.1f}", f"{vector_reset / base:.2f}"))
    rows.append((f"DimeEnv.restore(snapshot) ({len(snap)} bytes)", f"{restore * 1e6:.1f}", f"{restore / base:.2f}"))
    print_table(("operation", "us", "x CartPole reset()"), rows)


if __name__ == "__main__":
    main()
