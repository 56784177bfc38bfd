"""Does DIME's score reward only operating? Closed-loop policies against the observation-blind family.

For each task: noop, the triage oracle, the threshold baseline, the reference solution, the lookahead
planner, and every blind probe (a throttle level held from step 0, crossed with 0-4 scale-ups at the
start). Prints per task the best closed-loop and best blind policy and the two margins the benchmark
promises (best closed-loop - best blind >= 0.10, best closed-loop - noop >= 0.20), then the DIME
index of each policy and of the best blind one (which must stay at most half the oracle's).

    python benchmarks/bench_discrimination.py --seeds 20            # public seeds 0..19
    python benchmarks/bench_discrimination.py --seeds 20 --no-planner --tasks retry_storm,zombie_node
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from dime_gym.policies import BLIND_POLICIES
from dime_gym.scenarios import TASK_IDS
from dime_trainer.evaluation.runners import make_jobs, run_array_policy

CLOSED_LOOP = ("oracle", "threshold", "reference", "planner")


def run(policies, tasks, seeds) -> dict[str, dict[str, dict[str, float]]]:
    """``{policy: {task: {"score": mean, "success": rate}}}``."""
    from dime_gym.policies import make_policy

    out = {}
    for name in policies:
        per_task: dict[str, list[tuple[float, bool]]] = {t: [] for t in tasks}
        run_array_policy(make_policy(name), make_jobs(tasks, seeds),
                         lambda r: per_task[r["task"]].append((r["score"], r["success"])), record_steps=False)
        out[name] = {t: {"score": float(np.mean([s for s, _ in v])), "success": float(np.mean([ok for _, ok in v]))}
                     for t, v in per_task.items()}
    return out


def index(per_task: dict[str, dict[str, float]]) -> float:
    """DIME index over the tasks run (100 x mean of (score + success) / 2)."""
    return 100.0 * float(np.mean([0.5 * v["score"] + 0.5 * v["success"] for v in per_task.values()]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="public seeds 0..N-1 per task")
    ap.add_argument("--tasks", default=",".join(TASK_IDS))
    ap.add_argument("--no-planner", action="store_true", help="skip the (slower) lookahead planner")
    args = ap.parse_args(argv)
    tasks = args.tasks.split(",")
    seeds = list(range(args.seeds))
    closed = [p for p in CLOSED_LOOP if not (args.no_planner and p == "planner")]
    start = time.perf_counter()
    results = run(["noop", *closed], tasks, seeds)
    blind = run(BLIND_POLICIES, tasks, seeds)
    print(f"{len(tasks)} tasks x {len(seeds)} seeds, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    header = ["task", "noop", *closed, "best blind", "closed-blind", "closed-noop"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    ok = True
    for t in tasks:
        best_closed = max(results[p][t]["score"] for p in closed)
        best_blind_name = max(blind, key=lambda p: blind[p][t]["score"])
        best_blind = blind[best_blind_name][t]["score"]
        gap_blind = best_closed - best_blind
        gap_noop = best_closed - results["noop"][t]["score"]
        ok &= gap_blind >= 0.10 and gap_noop >= 0.20
        cells = [f"{results[p][t]['score']:.3f}" for p in ["noop", *closed]]
        print(f"| {t} | " + " | ".join(cells) + f" | {best_blind:.3f} ({best_blind_name}) | {gap_blind:+.3f}"
              f"{'' if gap_blind >= 0.10 else ' !'} | {gap_noop:+.3f}{'' if gap_noop >= 0.20 else ' !'} |")
    indices = {p: index(results[p]) for p in results}
    best_blind_name = max(blind, key=lambda p: index(blind[p]))
    indices[f"best blind ({best_blind_name})"] = index(blind[best_blind_name])
    print()
    for name, value in indices.items():
        print(f"DIME index {name}: {value:.1f}")
    half = indices["oracle"] / 2 if "oracle" in indices else float("nan")
    blind_ok = index(blind[best_blind_name]) <= half
    print(f"best blind index {index(blind[best_blind_name]):.1f} <= half the oracle's {half:.1f}: {blind_ok}")
    print(f"all per-task margins met: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
