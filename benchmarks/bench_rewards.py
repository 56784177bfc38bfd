"""GRPO reward scoring throughput: completions scored per second by each DIME reward callback
and by all four together (each text parsed once, shared by the callbacks), against the naive peer measured in the same run (restore a
``DimeEnv`` from the row's snapshot and step it, once per completion). Interleaved rounds,
median of rounds.

    python benchmarks/bench_rewards.py [--rounds 5] [--prompts 64] [--group 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from dime_gym.env import UNPARSABLE_ANSWER, DimeEnv
from dime_gym.text import parse_answer
from dime_trainer.data import build_prompt_dataset
from dime_trainer.rewards import REWARD_FUNCS, _parse_cached

ANSWER_SHAPES = (
    '<reasoning>Following triage rule {i}.</reasoning>\n<action>{{"command": "{command}"}}</action>',
    "Answer {i}:\n```bash\n{command}\n```",
    "<think>\nLet me look at metric {i} first.\n</think>\n<reasoning>r</reasoning><action>{{'command': '{command}'}}</action>",
    "I am not sure what to do here ({i}).",
)
COMMANDS = ("no_op", "kubectl delete pod node-2", "kubectl throttle ingress --rate=0.50", "kubectl logs node-5",
            "kubectl scale deployment frontend --replicas=1", "kubectl reroute traffic --from=node-1 --to=node-4")


def make_batch(dataset, group: int, rng: np.random.Generator) -> dict:
    """A TRL-shaped batch: each prompt repeated ``group`` times with distinct completions."""
    completions, columns = [], {"snapshot": [], "oracle_action": []}
    for row in dataset:
        for _ in range(group):
            command = row["oracle_command"] if rng.random() < 0.3 else COMMANDS[rng.integers(len(COMMANDS))]
            text = ANSWER_SHAPES[rng.integers(len(ANSWER_SHAPES))].format(command=command, i=len(completions))  # all distinct
            completions.append([{"role": "assistant", "content": text}])
            columns["snapshot"].append(row["snapshot"])
            columns["oracle_action"].append(row["oracle_action"])
    return {"prompts": [None] * len(completions), "completions": completions, **columns}


def naive_env_rewards(prompts, completions, snapshot, **kwargs) -> list[float]:
    """The peer: one restored env per completion, stepped once."""
    env = DimeEnv(with_oracle=False)
    out = []
    for completion, snap in zip(completions, snapshot):
        parsed = parse_answer(completion[0]["content"])
        env.restore(snap)
        out.append(env.step(np.asarray(parsed.action) if parsed.ok else UNPARSABLE_ANSWER)[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (GRPO num_generations)")
    args = parser.parse_args()

    dataset = build_prompt_dataset(tasks=["retry_storm", "node_failure", "zombie_node", "black_swan_az_failure"], seeds=2,
                                   progress=False)
    dataset = dataset.select(range(min(args.prompts, len(dataset))))
    batch = make_batch(dataset, args.group, np.random.default_rng(0))
    n = len(batch["completions"])
    cases = {func.__name__: func for func in REWARD_FUNCS}
    cases["naive restore+step per completion (peer)"] = naive_env_rewards
    cases["all four DIME rewards"] = lambda **kw: [f(**kw) for f in REWARD_FUNCS]
    for fn in cases.values():  # warm-up (JIT, caches)
        fn(**batch)
    times = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            _parse_cached.cache_clear()  # every batch of a real run is new text
            start = time.perf_counter()
            fn(**batch)
            times[name].append(time.perf_counter() - start)
    peer = statistics.median(times["naive restore+step per completion (peer)"])
    print(f"{n} completions ({len(dataset)} prompts x {args.group}), median of {args.rounds} rounds")
    print(f"{'reward':42s} {'completions/s':>14s} {'x peer speed':>13s}")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:42s} {n / seconds:14,.0f} {peer / seconds:13.2f}")


if __name__ == "__main__":
    main()
