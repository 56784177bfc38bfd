"""What do the recipe's rewards converge to? The greedy policy of a reward design, on the benchmark.

In every state the policy answers the canonical command whose clean answer earns the highest
weighted sum of the reward functions (``build_rewards(config)``, as ``dime-train`` uses them): the
operator GRPO would converge to if it maximised the rewards exactly. A faithful design makes that
operator good at DIME. Compares the shipped recipe with the old design (equal weights, one step)
and the triage oracle, on held-out seeds, paired by seed.

    python benchmarks/bench_reward_design.py --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import yaml

from dime_gym.scenarios import TASK_IDS
from dime_gym.splits import HELDOUT_EVAL_SEEDS
from dime_trainer.cli import CONFIG_DIR
from dime_trainer.evaluation import builtin_scores
from dime_trainer.evaluation.probes import reward_greedy_episodes
from dime_trainer.evaluation.stats import mean_ci, paired_permutation_p
from dime_trainer.rewards import OLD_REWARD_DESIGN, build_rewards


def _p_text(p: float) -> str:
    """``= 0.0123``, or ``< 0.0001`` when no permutation draw reached the observed difference."""
    return "< 0.0001" if p < 1e-4 else f"= {p:.4f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="the first N held-out seeds per task")
    args = ap.parse_args(argv)
    seeds = list(HELDOUT_EVAL_SEEDS[: args.seeds])
    recipe = yaml.safe_load((CONFIG_DIR / "qwen3_8b_grpo.yaml").read_text())
    designs = {"recipe": recipe, "old (equal weights, horizon 0)": {**recipe, **OLD_REWARD_DESIGN}}
    scores: dict[str, dict[tuple[str, int], float]] = {}
    shed_all = {}
    for name, config in designs.items():
        start = time.perf_counter()
        episodes = reward_greedy_episodes(*build_rewards(config), TASK_IDS, seeds)
        scores[name] = {(e["task"], e["seed"]): e["score"] for e in episodes}
        shed_all[name] = sum(c == "kubectl throttle ingress --rate=0.00" for e in episodes for c in e["commands"])
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    oracle = builtin_scores(["oracle"], TASK_IDS, seeds)["oracle"]
    scores["oracle"] = {(t, s): v for t in TASK_IDS for s, v in zip(seeds, oracle[t], strict=True)}

    names = list(scores)
    print(f"greedy policy of each reward design, {len(seeds)} held-out seeds per task (mean final score)\n")
    print("| task | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for t in TASK_IDS:
        print(f"| {t} | " + " | ".join(f"{np.mean([scores[n][(t, s)] for s in seeds]):.3f}" for n in names) + " |")
    print("| **mean over tasks** | " + " | ".join(f"**{np.mean(list(scores[n].values())):.3f}**" for n in names) + " |")
    print()
    for name in names[:2]:
        print(f"{name}: throttle-0 answers {shed_all[name]}")
    diffs = [[scores["recipe"][(t, s)] - scores[names[1]][(t, s)] for s in seeds] for t in TASK_IDS]
    flat = [d for row in diffs for d in row]
    mean, half = mean_ci(flat)
    print(f"recipe - old design: {mean:+.3f} +/- {half:.3f} (95 % CI over {len(flat)} paired episodes), "
          f"p {_p_text(paired_permutation_p(diffs))} (sign-flip permutation, paired by task and seed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
