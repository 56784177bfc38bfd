"""CPU learning benchmark: does a GRPO run with ``dime-train`` raise the ``dime-eval`` score?

    python benchmarks/bench_learning.py                       # default reward design
    python benchmarks/bench_learning.py --design old          # equal weights, horizon 0
    python benchmarks/bench_learning.py --design default old  # both, one shared base model and base eval
    python benchmarks/bench_learning.py --design default episode   # step mode vs episode mode (dime-train --rollout episode)

For each design: build the base model (a tiny Qwen3 made in code, warm-started as a *mediocre*
operator: ``save_tiny_qwen3(random_fraction=...)`` imprints well-formed answers whose command is
the oracle's most of the time and a random canonical one otherwise), evaluate it with
``dime-eval --policy hf`` on held-out seeds, train it with ``dime-train --config
cpu_learning`` (the shipped config), evaluate the trained model with the same protocol, and print
``dime-eval compare base trained``: the paired per-seed difference of the mean score, its 95 %
interval and the sign-flip permutation p-value. Also printed: the mean training reward (and each
reward term) at the start and at the end of training, from the trainer's ``log_history``; the
reward-greedy probe's score (the policy the design's rewards converge to, on the same tasks and
seeds: what the design would teach a model able to learn it fully); and the wall time of each stage. The ``episode`` design trains in episode mode (each
completion is up to ``EPISODE_TURNS`` turns of an episode, finished by the oracle, scored by the
episode rewards; README "Step mode vs episode mode") and also prints the generation and env time
per turn; the reward-greedy probe is a step-mode notion and is skipped for it.

Everything runs as subprocesses (``python -m dime_trainer.cli`` / ``python -m
dime_trainer.evaluation.cli``), exactly as a user would run them; results go under ``--out``.
The protocol (tasks, seeds, sampling) is fixed here and recorded in benchmarks/README.md; the
evaluation samples at dime-eval's default settings (T 0.6, top-p 0.95, top-k 20), seeded by
``--sampling-seed`` with (task, seed, step), so a rerun reproduces the same answers up to float
nondeterminism across thread counts.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
# The recipe's default design vs the one before it (equal weights, one-step env reward).
DESIGNS = {
    "default": [],
    "old": ["--reward_weights", "1", "1", "1", "1", "--env_reward_horizon", "0"],
}
# Episode mode on the same config: 3 answers of <= 48 tokens per completion (the tiny tokenizer's
# user turns are 320 tokens on average, 434 at most, so 1,024 tokens hold 3 answers and 2 user
# turns), the oracle finishing the episode, and half the steps (each trains on up to 3 answers
# per completion, generated on ~2k-token contexts, so 60 steps see more answers than 120 do).
EPISODE_TURNS = 3
DESIGNS["episode"] = ["--rollout", "episode", "--episode_turns", str(EPISODE_TURNS), "--episode_turn_max_tokens", "48",
                      "--max_completion_length", "1024", "--max_steps", "60", "--save_steps", "60"]
TASKS = "node_failure,flash_crowd,retry_storm,hot_shard_skew"  # = cpu_learning.yaml's training tasks
REWARD_KEYS = ("reward", "rewards/reward_format/mean", "rewards/reward_validity/mean", "rewards/reward_env/mean",
               "rewards/reward_triage/mean", "rewards/reward_episode_format/mean", "rewards/reward_episode_validity/mean",
               "rewards/reward_episode_return/mean", "rewards/reward_episode_score/mean")
EPISODE_TIME_KEYS = ("dime/episode/generation_s_per_turn", "dime/episode/env_s_per_turn", "dime/episode/continuation_s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", nargs="+", choices=sorted(DESIGNS), default=["default"])
    p.add_argument("--out", default="runs/bench-learning")
    p.add_argument("--config", default="cpu_learning", help="dime-train config (file or shipped name)")
    p.add_argument("--tasks", default=TASKS, help="evaluation tasks (held-out seeds)")
    p.add_argument("--seeds", type=int, default=8, help="held-out seeds per task")
    p.add_argument("--max-steps", type=int, default=None, help="GRPO steps (default: the config's)")
    p.add_argument("--train-tasks", default=None, help="training tasks (default: the config's)")
    p.add_argument("--dataset-episodes", type=int, default=None, help="episodes per training task (default: the config's)")
    p.add_argument("--eval-max-steps", type=int, default=None, help="cut eval episodes short (toy runs only)")
    p.add_argument("--imprint-steps", type=int, default=400)
    p.add_argument("--random-fraction", type=float, default=0.4, help="warm start: share of random-command answers")
    p.add_argument("--states-per-task", type=int, default=6, help="warm start: oracle states per task")
    p.add_argument("--seed", type=int, default=0, help="base model, imprint and training seed")
    p.add_argument("--sampling-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (1: robust on a shared machine)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--no-probe", action="store_true", help="skip the reward-greedy probe (about 20 s per design)")
    return p.parse_args(argv)


def run(cmd: list[str], log: pathlib.Path, env: dict) -> float:
    """Run ``cmd`` with output to ``log``; returns the wall time; exits with the tail on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if rc != 0:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"bench_learning: {' '.join(cmd[:4])} ... failed (exit {rc}); log: {log}")
    return time.perf_counter() - t0


def build_base(args, path: pathlib.Path) -> float:
    t0 = time.perf_counter()
    import torch

    from dime_trainer.tiny_model import save_tiny_qwen3

    torch.set_num_threads(args.threads)
    save_tiny_qwen3(path, seed=args.seed, imprint_steps=args.imprint_steps, random_fraction=args.random_fraction,
                    states_per_task=args.states_per_task, with_last_command=True)
    return time.perf_counter() - t0


def evaluate(args, model: pathlib.Path, name: str, out: pathlib.Path, env: dict) -> float:
    cmd = [sys.executable, "-m", "dime_trainer.evaluation.cli", "run", "--policy", "hf", "--model", str(model),
           "--name", name, "--out", str(out / "eval"), "--split", "heldout", "--seeds", str(args.seeds),
           "--tasks", args.tasks, "--device", "cpu", "--dtype", "float32", "--max-new-tokens", str(args.max_new_tokens),
           "--sampling-seed", str(args.sampling_seed), "--no-steps", "--quiet", "--overwrite"]
    if args.eval_max_steps:
        cmd += ["--max-steps", str(args.eval_max_steps)]
    return run(cmd, out / f"eval-{name}.log", env)


def reward_curve(train_dir: pathlib.Path) -> list[dict]:
    """The trainer's logged reward rows (``log_history`` of the last checkpoint)."""
    states = sorted(glob.glob(str(train_dir / "checkpoint-*" / "trainer_state.json")),
                    key=lambda p: int(pathlib.Path(p).parent.name.split("-")[1]))
    if not states:
        return []
    history = json.loads(pathlib.Path(states[-1]).read_text())["log_history"]
    return [row for row in history if "reward" in row]


def curve_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return ["training rewards: no log_history found"]
    k = max(1, len(rows) // 4)  # first and last quarter of the logged windows
    first, last = rows[:k], rows[-k:]
    lines = [f"training rewards (mean of the first / last {k} logged window(s), steps "
             f"{first[0]['step']}-{first[-1]['step']} / {last[0]['step']}-{last[-1]['step']}):"]
    for key in REWARD_KEYS:
        if key in rows[0]:
            a = sum(r[key] for r in first) / len(first)
            b = sum(r[key] for r in last) / len(last)
            lines.append(f"  {key:32s} {a:+.3f} -> {b:+.3f}")
    return lines


def episode_time_lines(rows: list[dict]) -> list[str]:
    """Episode mode: where a generation batch's time goes (means over the logged windows)."""
    times = {key: sum(r[key] for r in rows) / len(rows) for key in EPISODE_TIME_KEYS if rows and key in rows[0]}
    if len(times) < len(EPISODE_TIME_KEYS):
        return []
    gen, env, cont = (times[k] for k in EPISODE_TIME_KEYS)
    return [f"episode rollouts, per batched turn: generation {gen:.3f} s, env (step, render, tokenize) {env:.4f} s "
            f"({env / gen:.1%} of generation); oracle continuation {cont:.3f} s per batch"]


def reward_greedy_lines(design: str, tasks: str, seeds: int) -> list[str]:
    """The reward-greedy probe (``dime_trainer.evaluation.probes``): the policy the design's rewards
    converge to (every step, the canonical command whose clean answer earns the highest weighted
    reward), on the evaluation tasks and seeds; what a model that learned the rewards perfectly
    would score."""
    import numpy as np

    from dime_gym.splits import HELDOUT_EVAL_SEEDS
    from dime_trainer.evaluation.probes import reward_greedy_episodes
    from dime_trainer.rewards import build_rewards

    flags = DESIGNS[design]
    config = {}
    if "--reward_weights" in flags:
        i = flags.index("--reward_weights")
        config["reward_weights"] = [float(w) for w in flags[i + 1:i + 5]]
    if "--env_reward_horizon" in flags:
        config["env_reward_horizon"] = int(flags[flags.index("--env_reward_horizon") + 1])
    funcs, weights = build_rewards(config)
    task_ids = tasks.split(",")
    episodes = reward_greedy_episodes(funcs, weights, task_ids, list(HELDOUT_EVAL_SEEDS[:seeds]))
    per_task = {t: float(np.mean([e["score"] for e in episodes if e["task"] == t])) for t in task_ids}
    return [f"reward-greedy probe ({design} rewards, same tasks and seeds): mean score "
            f"{np.mean(list(per_task.values())):.3f} ({', '.join(f'{t} {v:.3f}' for t, v in per_task.items())})"]


def main(argv=None) -> int:
    args = parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    print(f"bench_learning: out {out}, eval tasks {args.tasks}, held-out seeds 1,000,000..+{args.seeds - 1}, "
          f"warm start {args.imprint_steps} imprint steps with {args.random_fraction:.0%} random answers", flush=True)

    base = out / "base-model"
    t_base = build_base(args, base)
    t_base_eval = evaluate(args, base, "base", out, env)
    print(f"base model built in {t_base:.0f} s, evaluated in {t_base_eval:.0f} s", flush=True)

    for design in args.design:
        train_dir = out / f"train-{design}"
        cmd = [sys.executable, "-m", "dime_trainer.cli", "--config", args.config, "--model_name_or_path", str(base),
               "--output_dir", str(train_dir), "--seed", str(args.seed), "--torch_threads", str(args.threads),
               *DESIGNS[design]]
        if args.max_steps is not None:
            cmd += ["--max_steps", str(args.max_steps)]
        if args.train_tasks:
            cmd += ["--tasks", args.train_tasks]
        if args.dataset_episodes is not None:
            cmd += ["--dataset_episodes", str(args.dataset_episodes)]
        if args.max_steps is not None:  # the config saves one checkpoint, at the end: its trainer_state.json has the log
            cmd += ["--save_steps", str(args.max_steps)] + (["--logging_steps", "1"] if args.max_steps < 20 else [])
        t_train = run(cmd, out / f"train-{design}.log", env)
        t_eval = evaluate(args, train_dir, design, out, env)
        cmp_json = out / f"compare-base-{design}.json"
        table = subprocess.run([sys.executable, "-m", "dime_trainer.evaluation.cli", "compare",
                                str(out / "eval" / "base.summary.json"), str(out / "eval" / f"{design}.summary.json"),
                                "--json", str(cmp_json)], capture_output=True, text=True, env=env, cwd=REPO, check=True).stdout
        o = json.loads(cmp_json.read_text())["overall"]
        print(f"\n=== design {design}: {' '.join(DESIGNS[design]) or '(the recipe defaults)'} ===")
        curve = reward_curve(train_dir)
        print("\n".join(curve_lines(curve) + episode_time_lines(curve)))
        if not args.no_probe and design != "episode":
            print("\n".join(reward_greedy_lines(design, args.tasks, args.seeds)))
        print(table)
        print(f"paired difference ({design} - base) in mean dime-eval score: {o['diff']:+.4f} "
              f"(95 % CI {o['diff'] - o['diff_ci95']:+.4f} to {o['diff'] + o['diff_ci95']:+.4f}), p = {o['p']:.4g}; "
              f"base {o['a']:.4f}, trained {o['b']:.4f}")
        total = t_base + t_base_eval + t_train + t_eval
        print(f"wall time: base build {t_base:.0f} s + base eval {t_base_eval:.0f} s + dime-train {t_train:.0f} s + "
              f"trained eval {t_eval:.0f} s = {total:.0f} s ({total / 60:.1f} min)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
