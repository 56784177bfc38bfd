"""Does DIME's score reward only operating? Closed-loop policies against the observation-blind family.

For each task: noop, the triage oracle, the threshold baseline, the reference solution, the lookahead
planner, and every blind probe (a throttle level held from step 0, crossed with 0-4 scale-ups at the
start; 105 in all). Prints per task the best closed-loop and best blind policy and the two margins the
benchmark promises (best closed-loop - best blind >= 0.10, best closed-loop - noop >= 0.20), then the
DIME index of each policy and of the best blind probe (which must stay at most half the oracle's).

    python benchmarks/bench_discrimination.py --seeds 100                      # public seeds 0..99
    python benchmarks/bench_discrimination.py --split heldout --seeds 30       # held-out seeds
"""

from __future__ import annotations

import argparse
import sys
import time

from dime_gym.policies import BLIND_POLICIES
from dime_gym.scenarios import TASK_IDS
from dime_gym.splits import HELDOUT_EVAL_SEEDS, PUBLIC_EVAL_SEEDS
from dime_trainer.evaluation.probes import (
    CLOSED_LOOP_POLICIES,
    MAX_BLIND_INDEX_RATIO,
    best_blind_by_index,
    dime_index,
    policy_summaries,
    task_margins,
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="the first N seeds of the split per task")
    ap.add_argument("--split", default="public", choices=("public", "heldout"))
    ap.add_argument("--tasks", default=",".join(TASK_IDS))
    args = ap.parse_args(argv)
    tasks = args.tasks.split(",")
    seeds = list((PUBLIC_EVAL_SEEDS if args.split == "public" else HELDOUT_EVAL_SEEDS)[: args.seeds])
    start = time.perf_counter()
    summaries = policy_summaries(["noop", *CLOSED_LOOP_POLICIES, *BLIND_POLICIES], tasks, seeds)
    print(f"{len(tasks)} tasks x {len(seeds)} {args.split} seeds, {len(BLIND_POLICIES)} blind probes, "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)

    print("| task | noop | " + " | ".join(CLOSED_LOOP_POLICIES) + " | best blind | closed - blind | closed - noop |")
    print("|---|" + "---|" * (len(CLOSED_LOOP_POLICIES) + 4))
    rows = task_margins(summaries, CLOSED_LOOP_POLICIES, BLIND_POLICIES)
    for row in rows:
        cells = [f"{summaries[p]['tasks'][row.task]['score_mean']:.3f}" for p in ("noop", *CLOSED_LOOP_POLICIES)]
        print(f"| {row.task} | " + " | ".join(cells) + f" | {row.best_blind_score:.3f} ({row.best_blind}) | "
              f"{row.blind_margin:+.3f} | {row.noop_margin:+.3f} |")
    print()
    for name in ("noop", *CLOSED_LOOP_POLICIES):
        print(f"DIME index {name}: {dime_index(summaries[name]):.1f}")
    blind_name, blind_index = best_blind_by_index(summaries, BLIND_POLICIES)
    oracle_index = dime_index(summaries["oracle"])
    print(f"DIME index best blind ({blind_name}): {blind_index:.1f} = {blind_index / oracle_index:.2f} x the oracle's "
          f"(promised <= {MAX_BLIND_INDEX_RATIO})")
    failing = [row.task for row in rows if not row.ok]
    print(f"per-task margins met on {len(rows) - len(failing)} of {len(rows)} tasks" + (f" (not: {', '.join(failing)})" if failing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
