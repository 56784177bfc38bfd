"""``dime-eval``: run built-in policies over DIME tasks and seeds; print a score table.

Each (policy, task, seed) is one full episode of ``DimeEnv(task).reset(seed=seed)``; the
score is the task grader's final value. Intervals are 95 % normal-approximation intervals
of the mean over seeds (1.96 standard errors).

Example::

    dime-eval --policies noop,random,oracle --seeds 100
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

import numpy as np

from dime_gym.policies import BUILTIN_POLICIES, make_policy
from dime_gym.scenarios import TASK_IDS, get_task

DEFAULT_POLICIES = ("noop", "random", "oracle")


def run_episode(env, policy, task: str, seed: int) -> dict:
    """Play one episode; return its final score and totals."""
    obs, info = env.reset(seed=seed, options={"task": task})
    policy.reset(seed, env.episode)
    total_reward = 0.0
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs, info))
        total_reward += reward
        done = terminated or truncated
    return {"task": task, "seed": seed, "score": info["score"], "return": total_reward, "steps": int(obs["step"][0])}


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (1.96 standard errors; 0 for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return float(x.mean()), 0.0
    return float(x.mean()), float(1.96 * x.std(ddof=1) / math.sqrt(x.size))


def evaluate(policies: Sequence[str], tasks: Sequence[str], seeds: Sequence[int], progress: bool = True) -> dict:
    """Scores of every policy on every task and seed: ``{policy: {task: [score, ...]}}``."""
    from dime_gym.env import DimeEnv

    env = DimeEnv(with_oracle=False)
    results: dict[str, dict[str, list[float]]] = {p: {t: [] for t in tasks} for p in policies}
    total = len(policies) * len(tasks) * len(seeds)
    done = 0
    start = time.perf_counter()
    for name in policies:
        policy = make_policy(name)
        for task in tasks:
            for seed in seeds:
                results[name][task].append(run_episode(env, policy, task, seed)["score"])
                done += 1
                if progress and (done % 50 == 0 or done == total):
                    rate = done / max(time.perf_counter() - start, 1e-9)
                    print(f"\r[dime-eval] {done}/{total} episodes  {rate:.0f} ep/s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return results


def format_table(results: dict, tasks: Sequence[str]) -> str:
    """A Markdown table: one row per task, one "mean ± 95 % CI" column per policy."""
    policies = list(results)
    lines = ["| task | " + " | ".join(policies) + " |", "|---|" + "---|" * len(policies)]
    for task in tasks:
        cells = [f"{m:.3f} ± {h:.3f}" for m, h in (mean_interval(results[p][task]) for p in policies)]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    means = [np.mean([np.mean(results[p][t]) for t in tasks]) for p in policies]
    lines.append("| **mean over tasks** | " + " | ".join(f"**{m:.3f}**" for m in means) + " |")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dime-eval", description="Evaluate built-in policies on the DIME tasks.")
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES), help=f"comma-separated, from: {', '.join(BUILTIN_POLICIES)}")
    parser.add_argument("--tasks", default="all", help="comma-separated task ids, or 'all'")
    parser.add_argument("--seeds", type=int, default=20, help="episodes per task (seeds start..start+N-1)")
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="also write all per-seed scores to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
        for name in policies:
            make_policy(name)
        tasks = list(TASK_IDS) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
        for task in tasks:
            get_task(task)
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    except ValueError as exc:
        print(f"dime-eval: error: {exc}", file=sys.stderr)
        return 2
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    results = evaluate(policies, tasks, seeds, progress=not args.quiet)
    print(format_table(results, tasks))
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump({"seeds": seeds, "scores": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
