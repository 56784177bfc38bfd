"""(a) Single-env step time of DIME-v0 vs Gymnasium's CartPole-v1, both through ``gym.make``
with their default wrappers, measured side by side (interleaved rounds; the ratio is the median
of each round's own ratio) with pre-generated actions and resets at episode ends included. ``--breakdown`` also times the
parts of one DIME step, to show where the time goes.

    python benchmarks/bench_step.py [--rounds 7] [--steps 2000] [--breakdown]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import dime_gym  # noqa: F401 - registers DIME-v0
from benchutil import OtherLoad, interleaved_samples, machine, paired_ratio, print_table


def time_steps(env, actions, read_oracle: bool = False) -> float:
    """Seconds per step over ``actions``, resetting whenever an episode ends."""
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if read_oracle:
            info["oracle"]["command"]
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / len(actions)


def breakdown(repeats: int = 20000) -> list[tuple[str, str]]:
    """Microseconds of each part of one ``DimeEnv.step`` (best of 5 loops)."""
    from dime_gym.core.batch import RESULT_LOGS_NODE, step_single
    from dime_gym.env import DimeEnv, OracleInfo, _info
    from dime_gym.observation import ObservationSlots

    env = DimeEnv(with_oracle=False)
    env.reset(seed=0)
    states = env._engine.states
    params_bytes, states_bytes = env._engine.params.view(np.uint8), states.view(np.uint8)
    start_state = states.copy()
    action = np.zeros(4, dtype=np.int64)
    slots = ObservationSlots()
    result = tuple(range(RESULT_LOGS_NODE + 1))
    task = env.episode.task

    def best(fn, per_call: int = 1) -> float:
        fn()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(repeats // per_call):
                fn()
            times.append((time.perf_counter() - t0) / (repeats // per_call * per_call))
        return min(times) * 1e6

    def kernel_call():
        step_single(params_bytes, states_bytes, action, False, slots.record_bytes, 0)
        if states[0]["step"] >= 30:
            states[:] = start_state

    obs = slots.observations[0]
    n_slots = len(slots.observations)
    parts = [
        ("compiled step_single call (validate, physics, observe, score)", best(kernel_call) - best(lambda: states[0]["step"] >= 30)),
        (f"observation buffers and views, per step (made {n_slots} steps at a time)", best(ObservationSlots, n_slots)),
        ("info dict (components, errors, score, task)", best(lambda: _info(task, result, []))),
        ("lazy oracle entry (not read)", best(lambda: OracleInfo._lazy(obs))),
    ]
    return [(name, f"{us:.2f}") for name, us in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of a DIME step")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cartpole = gym.make("CartPole-v1")
    dime = gym.make("DIME-v0")
    dime_lean = gym.make("DIME-v0", with_oracle=False)
    cartpole_actions = [int(a) for a in rng.integers(0, 2, size=args.steps)]
    dime_actions = list(rng.integers(0, [6, 8, 8, 21], size=(args.steps, 4)))
    variants = {
        "CartPole-v1": lambda: time_steps(cartpole, cartpole_actions),
        "DIME-v0 (default: oracle in info, computed on read)": lambda: time_steps(dime, dime_actions),
        "DIME-v0 (with_oracle=False)": lambda: time_steps(dime_lean, dime_actions),
        "DIME-v0 (reading info['oracle'] every step)": lambda: time_steps(dime, dime_actions[: args.steps // 10], read_oracle=True),
    }
    for run in variants.values():  # warm-up (JIT compile or cache load)
        run()
    with OtherLoad() as load:
        samples = interleaved_samples(variants, args.rounds)
    rows = []
    for name, values in samples.items():
        median, q1, q3 = paired_ratio(samples, name, "CartPole-v1")
        rows.append((name, f"{statistics.median(values) * 1e6:.1f}", f"{median:.2f}", f"{q1:.2f}-{q3:.2f}"))
    print(machine())
    print(f"{args.rounds} interleaved rounds of {args.steps} steps; times: medians; x CartPole: median (and "
          f"quartiles) of each round's ratio; {load.summary()}")
    print_table(("env (through gym.make)", "us/step", "x CartPole", "quartiles"), rows)
    if args.breakdown:
        print()
        print_table(("part of DimeEnv.step", "us"), breakdown())


if __name__ == "__main__":
    main()
