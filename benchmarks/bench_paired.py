"""Paired before/after of the native vector env's time per call: this checkout's ``dime_gym``
against the one at a git revision, both imported into one process (the revision's copy renamed
``dime_gym_base``), at 1,024 mixed-task sub-envs with autoresets, on the default kernel.

Each round times ``--calls`` calls of each env, in an order reversed every other round, so both
see the same moments of the VM; a process reports the median of its rounds' ratios. One
process is not enough: whichever env is created second runs a few per cent slower even when both
are the same code (4-5 % on the 2-vCPU VM of stop 22), so the comparison runs in each creation
order and the figure is their geometric mean, in which that bias cancels.

    python benchmarks/bench_paired.py --base affcf04 [--rounds 61] [--repeats 2]
"""

from __future__ import annotations

import argparse
import importlib
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BASE_PACKAGE = "dime_gym_base"


def export_revision(revision: str, into: Path) -> None:
    """``dime_gym`` at ``revision`` as the package ``BASE_PACKAGE`` under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "dime_gym"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / BASE_PACKAGE
    (into / "dime_gym").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\bdime_gym\b", BASE_PACKAGE, path.read_text()))


def time_in_one_process(first: str, second: str, rounds: int, calls: int, num_envs: int) -> float:
    """Median over rounds of (time per call of ``second``) / (time per call of ``first``), the
    packages' vector envs created in that order."""
    rng = np.random.default_rng(0)
    actions = rng.integers(0, [6, 8, 8, 21], size=(16, num_envs, 4))
    actions[..., 0] *= rng.random((16, num_envs)) < 0.3  # mostly no-ops, as agents act
    envs = []
    for name in (first, second):
        package = importlib.import_module(name)
        vector = importlib.import_module(f"{name}.vector")
        env = vector.DimeVectorEnv(num_envs=num_envs, task=[package.TASK_IDS[i % len(package.TASK_IDS)]
                                                            for i in range(num_envs)])
        env.reset(seed=0)
        for t in range(60):  # compile, warm up, let the kernel chooser settle
            env.step(actions[t % len(actions)])
        envs.append(env)

    def seconds_per_call(env) -> float:
        start = time.perf_counter()
        for t in range(calls):
            env.step(actions[t % len(actions)])
        return (time.perf_counter() - start) / calls

    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            a = seconds_per_call(envs[0])
            b = seconds_per_call(envs[1])
        else:
            b = seconds_per_call(envs[1])
            a = seconds_per_call(envs[0])
        ratios.append(b / a)
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. a commit hash)")
    parser.add_argument("--rounds", type=int, default=61)
    parser.add_argument("--calls", type=int, default=40, help="calls per env per round")
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2, help="processes per creation order")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:  # one process: print the median ratio of the second package to the first
        sys.path.insert(0, args._path)
        print(time_in_one_process(*args._child, args.rounds, args.calls, args.num_envs))
        return
    with tempfile.TemporaryDirectory() as tmp:
        export_revision(args.base, Path(tmp))
        ratios = {}
        for first, second, label in ((BASE_PACKAGE, "dime_gym", "base created first"),
                                     ("dime_gym", BASE_PACKAGE, "new created first")):
            ratios[label] = []
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, __file__, "--base", args.base, "--rounds", str(args.rounds),
                                      "--calls", str(args.calls), "--num-envs", str(args.num_envs),
                                      "--_child", first, second, "--_path", tmp],
                                     check=True, capture_output=True, text=True).stdout
                ratio = float(out.strip().splitlines()[-1])
                ratios[label].append(ratio if first == BASE_PACKAGE else 1.0 / ratio)  # as new / base
                print(f"{label}: new / base time per call {ratios[label][-1]:.3f}", flush=True)
        both = [math.sqrt(a * b) for a, b in zip(ratios["base created first"], ratios["new created first"])]
        print(f"both orders (geometric mean per repeat): {', '.join(f'{x:.3f}' for x in both)}")


if __name__ == "__main__":
    main()
