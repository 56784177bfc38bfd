"""JIT start-up: seconds from a fresh interpreter to the first ``gym.make`` + ``reset`` +
``step`` (and to the first ``make_vec`` + ``reset`` + ``step``), cold (an empty Numba cache,
so every kernel compiles) and warm (the cache that cold run left), against CartPole-v1 started
the same way in the same run. Each figure is the median of ``--repeats`` fresh processes.

    python benchmarks/bench_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from benchutil import machine, print_table

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import gymnasium as gym
import numpy as np
env_id = sys.argv[1]
if env_id == "DIME-v0":
    import dime_gym
t_import = time.perf_counter()
env = gym.make(env_id)
env.reset(seed=0)
env.step(env.action_space.sample())
t_single = time.perf_counter()
envs = gym.make_vec(env_id, num_envs=256, vectorization_mode="vector_entry_point")
envs.reset(seed=0)
envs.step(envs.action_space.sample())
t_vector = time.perf_counter()
print(json.dumps({"import": t_import - t0, "single": t_single - t0, "vector": t_vector - t_single}))
"""


def run_child(env_id: str, cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD, env_id], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"CartPole-v1": [], "DIME-v0 cold": [], "DIME-v0 warm": []}
    for _ in range(args.repeats):
        results["CartPole-v1"].append(run_child("CartPole-v1", tempfile.mkdtemp()))
        with tempfile.TemporaryDirectory() as cache:
            results["DIME-v0 cold"].append(run_child("DIME-v0", cache))
            results["DIME-v0 warm"].append(run_child("DIME-v0", cache))
    median = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in results.items()}
    base = median["CartPole-v1"]
    print(machine())
    print(f"median of {args.repeats} fresh processes each; times from interpreter start of the child")
    print_table(("start", "imports, s", "to first make+reset+step, s", "x CartPole", "then make_vec(256)+reset+step, s", "x CartPole"), [
        (name, f"{m['import']:.2f}", f"{m['single']:.2f}", f"{m['single'] / base['single']:.1f}",
         f"{m['vector']:.3f}", f"{m['vector'] / base['vector']:.1f}")
        for name, m in median.items()
    ])


if __name__ == "__main__":
    main()
