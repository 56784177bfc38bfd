"""Single-env step time of DIME-v0 vs Gymnasium's CartPole-v1, both through ``gym.make``,
measured side by side (interleaved rounds, median of rounds), with pre-generated actions.

    python benchmarks/bench_step.py [--rounds 7] [--steps 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import dime_gym  # noqa: F401 - registers DIME-v0


def time_steps(env, actions) -> float:
    """Seconds per step over ``actions``, resetting whenever an episode ends."""
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / len(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    envs = {
        "CartPole-v1": gym.make("CartPole-v1"),
        "DIME-v0 (with oracle info)": gym.make("DIME-v0"),
        "DIME-v0 (with_oracle=False)": gym.make("DIME-v0", with_oracle=False),
    }
    rng = np.random.default_rng(0)
    actions = {
        name: [env.action_space.sample() for _ in range(args.steps)] if "Cart" in name else list(rng.integers(0, [6, 8, 8, 21], size=(args.steps, 4)))
        for name, env in envs.items()
    }
    for name, env in envs.items():  # warm-up (JIT compile)
        time_steps(env, actions[name][:50])
    samples: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.rounds):
        for name, env in envs.items():
            samples[name].append(time_steps(env, actions[name]))
    base = statistics.median(samples["CartPole-v1"])
    print(f"{'env':32s} {'us/step':>9s} {'x CartPole':>11s}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:32s} {median * 1e6:9.1f} {median / base:11.2f}")


if __name__ == "__main__":
    main()
