"""(b) Batched env-steps per second of DIME's native vector env vs CartPole's native vector env,
both from ``gym.make_vec(..., vectorization_mode="vector_entry_point")`` at the same sizes,
measured side by side in interleaved rounds (the ratio is the median of each round's own ratio:
a round's windows run close together in time, so most of the VM's slow drift cancels). DIME runs all
14 tasks mixed, with random actions and its NEXT_STEP autoresets included (a window of
``--steps`` calls spans several episode ends); CartPole's episodes end and reset inside its
window too.

Two more DIME rows show where the time goes: the same batch with no episode ending inside the
window (the compiled step alone plus the Python shell), and the autoreset cost per reset.

    python benchmarks/bench_vector.py [--sizes 1024 16384] [--rounds 9] [--steps 120]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import dime_gym  # noqa: F401 - registers DIME-v0
from benchutil import OtherLoad, interleaved_samples, machine, paired_ratio, print_table
from dime_gym import TASK_IDS


def env_steps_per_second(envs, actions, steps: int, seed: int | None = None) -> float:
    """``num_envs * steps / seconds`` over ``steps`` calls (reset first when ``seed`` is given)."""
    if seed is not None:
        envs.reset(seed=seed)
    start = time.perf_counter()
    for t in range(steps):
        envs.step(actions[t % len(actions)])
    return envs.num_envs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=120, help="calls per timed window (episodes are 40-60 steps)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with OtherLoad() as load:
        for n in args.sizes:
            tasks = [TASK_IDS[i % len(TASK_IDS)] for i in range(n)]
            dime = gym.make_vec("DIME-v0", num_envs=n, vectorization_mode="vector_entry_point", task=tasks)
            quiet = gym.make_vec("DIME-v0", num_envs=n, vectorization_mode="vector_entry_point", task=tasks)
            cartpole = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
            dime_actions = rng.integers(0, [6, 8, 8, 21], size=(16, n, 4))
            dime_actions[..., 0] *= rng.random((16, n)) < 0.3  # mostly no-ops, as agents act
            cartpole_actions = rng.integers(0, 2, size=(16, n))
            dime.reset(seed=0)
            cartpole.reset(seed=0)
            quiet_steps = 30  # < 40: no episode ends inside the window
            variants = {
                "DIME": lambda: env_steps_per_second(dime, dime_actions, args.steps),
                "DIME, no episode end in window": lambda: env_steps_per_second(quiet, dime_actions, quiet_steps, seed=1),
                "CartPole": lambda: env_steps_per_second(cartpole, cartpole_actions, args.steps),
            }
            for run in variants.values():  # warm-up: compile or load kernels
                run()
            samples = interleaved_samples(variants, args.rounds)
            rates = {name: statistics.median(values) for name, values in samples.items()}
            reset_mask = np.ones(n, dtype=np.bool_)
            t0 = time.perf_counter()
            quiet.reset(options={"reset_mask": reset_mask})
            reset_us = (time.perf_counter() - t0) / n * 1e6
            base = rates["CartPole"]

            def vs_cartpole(name):
                median, q1, q3 = paired_ratio(samples, name, "CartPole")
                return f"{median:.2f}", f"{q1:.2f}-{q3:.2f}"

            rows += [
                (n, "CartPole-v1 (native vector env)", f"{base / 1e6:.2f}", "1.00", "", ""),
                (n, "DIME-v0 (mixed tasks, autoresets)", f"{rates['DIME'] / 1e6:.2f}", *vs_cartpole("DIME"), ""),
                (n, "DIME-v0, no episode end in window", f"{rates['DIME, no episode end in window'] / 1e6:.2f}",
                 *vs_cartpole("DIME, no episode end in window"), f"autoreset: {reset_us:.0f} us/sub-env"),
            ]
            del dime, quiet, cartpole
    print(machine())
    print(f"{args.rounds} interleaved rounds; rates: medians; x CartPole: median (and quartiles) of each round's "
          f"ratio; windows of {args.steps} calls; {load.summary()}")
    print_table(("num_envs", "env", "M env-steps/s", "x CartPole", "quartiles", "note"), rows)


if __name__ == "__main__":
    main()
