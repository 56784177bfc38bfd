"""(d) Counterfactual scoring throughput: candidate actions scored per second from one snapshot,
on one core (``numba.set_num_threads(1)``, serial kernel), by ``score_actions`` vs the obvious
peer measured in the same run: restore a ``DimeEnv`` from the snapshot and step it, once per
candidate (interleaved rounds, median). Group sizes K as in GRPO (8, 64) and a large batch.

    python benchmarks/bench_counterfactual.py [--rounds 5] [--calls 200]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from benchutil import OtherLoad, interleaved, machine, print_table
from dime_gym.counterfactual import score_actions
from dime_gym.env import DimeEnv


def scored_per_second(snapshot: bytes, actions: np.ndarray, calls: int, **kwargs) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        score_actions(snapshot, actions, parallel=False, **kwargs)
    return calls * len(actions) / (time.perf_counter() - start)


def restore_and_step_per_second(env: DimeEnv, snapshot: bytes, actions: np.ndarray) -> float:
    """The peer: one restore + one ``env.step`` per candidate."""
    start = time.perf_counter()
    for a in actions:
        env.restore(snapshot)
        env.step(a)
    return len(actions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="score_actions calls per round at K=8")
    args = parser.parse_args()
    numba.set_num_threads(1)
    env = DimeEnv(task="retry_storm", with_oracle=False)
    env.reset(seed=0)
    for _ in range(8):
        env.step(np.zeros(4, dtype=np.int64))
    snapshot = env.snapshot()
    rng = np.random.default_rng(0)
    candidates = {k: rng.integers(0, [6, 8, 8, 21], size=(k, 4)) for k in (8, 64, 1024)}
    peer_env = DimeEnv(task="retry_storm", with_oracle=False)
    peer_actions = np.concatenate([candidates[1024]] * 2)
    variants = {
        "peer: DimeEnv.restore + step, per candidate": lambda: restore_and_step_per_second(peer_env, snapshot, peer_actions),
        "score_actions K=8": lambda: scored_per_second(snapshot, candidates[8], args.calls),
        "score_actions K=64": lambda: scored_per_second(snapshot, candidates[64], args.calls // 4),
        "score_actions K=1024": lambda: scored_per_second(snapshot, candidates[1024], max(2, args.calls // 40)),
        "score_actions K=64, horizon 4, noop continuation": lambda: scored_per_second(
            snapshot, candidates[64], args.calls // 8, horizon=4, continuation="noop"),
        "score_actions K=8, horizon 4, oracle continuation": lambda: scored_per_second(
            snapshot, candidates[8], args.calls // 20, horizon=4, continuation="oracle"),
    }
    for run in variants.values():
        run()
    with OtherLoad() as load:
        rates = interleaved(variants, args.rounds)
    base = rates["peer: DimeEnv.restore + step, per candidate"]
    print(machine())
    print(f"one thread; {args.rounds} interleaved rounds, medians; {load.summary()}")
    print_table(("method", "actions scored/s", "x peer"), [(name, f"{rate:,.0f}", f"{rate / base:.1f}") for name, rate in rates.items()])


if __name__ == "__main__":
    main()
