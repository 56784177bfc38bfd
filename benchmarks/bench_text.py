"""Throughput of the text interface, measured side by side with its peers in one run
(interleaved rounds, median of rounds):

* rendering one observation into chat messages vs the seed's way (``json.dumps(obs, indent=2)``
  of the observation as lists) and vs one ``env.step`` of the structured env;
* reading one answer (``parse_answer``) for clean, rescued and unparsable answers, and one
  command (``parse_command``), vs one ``env.step``.

    python benchmarks/bench_text.py [--rounds 7] [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np

import dime_gym  # noqa: F401 - registers DIME-v0
from dime_gym.text import parse_answer, parse_command, render_messages

ANSWERS = {
    "clean answer": '<think>\nmem 0.95 on node 3\n</think>\n<reasoning>Rule 1: node 3 is out of memory.</reasoning>\n'
                    '<action>{"command": "kubectl delete pod node-3"}</action>',
    "rescued answer": "Node 3 looks bad.\n```bash\nkubectl delete pod 3\n```\nThat should fix it.",
    "unparsable answer": "I am not sure; maybe wait and see what happens next. " * 4,
}


def per_call_us(fn, args_list) -> float:
    start = time.perf_counter()
    for args in args_list:
        fn(*args)
    return (time.perf_counter() - start) / len(args_list) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=2000, help="calls per round")
    args = parser.parse_args()

    env = gym.make("DIME-v0", task="cascading_failure")
    obs, info = env.reset(seed=0)
    samples = []
    rng = np.random.default_rng(0)
    for _ in range(200):  # varied observations and infos from a real episode
        obs, _, _, truncated, info = env.step(env.action_space.sample() if rng.random() < 0.3 else np.zeros(4, np.int64))
        samples.append((obs, info))
        if truncated:
            env.reset()
    pairs = [samples[i % len(samples)] for i in range(args.n)]
    seed_style = [({k: v.tolist() for k, v in o.items()},) for o, _ in pairs]
    actions = [(np.zeros(4, np.int64),) for _ in range(args.n)]

    def env_step(action):
        if env.step(action)[3]:
            env.reset()

    cases = {
        "env.step (structured, peer)": (env_step, actions),
        "render_messages": (render_messages, pairs),
        "json.dumps(obs, indent=2) (seed, peer)": (lambda o: json.dumps(o, indent=2), seed_style),
        **{f"parse_answer: {name}": (parse_answer, [(text,)] * args.n) for name, text in ANSWERS.items()},
        "parse_command": (parse_command, [("kubectl throttle ingress --rate=0.4",)] * args.n),
    }
    times = {name: [] for name in cases}
    for name, (fn, call_args) in cases.items():  # warm-up
        per_call_us(fn, call_args[:50])
    for _ in range(args.rounds):
        for name, (fn, call_args) in cases.items():
            times[name].append(per_call_us(fn, call_args))

    step_us = statistics.median(times["env.step (structured, peer)"])
    print(f"{'case':42s} {'us/call':>9s} {'calls/s':>10s} {'x env.step':>11s}")
    for name, values in times.items():
        us = statistics.median(values)
        print(f"{name:42s} {us:9.1f} {1e6 / us:10.0f} {us / step_us:11.2f}")
    render_us = statistics.median(times["render_messages"])
    seed_us = statistics.median(times["json.dumps(obs, indent=2) (seed, peer)"])
    print(f"\nrender_messages / seed json.dumps = {render_us / seed_us:.2f}x (median of {args.rounds} rounds x {args.n} calls)")


if __name__ == "__main__":
    main()
