"""``dime-eval``: the DIME benchmark for built-in policies, user policies and language models.

    dime-eval --policy noop,random,threshold,oracle --seeds 20          # built-ins, seconds, no GPU
    dime-eval --policy hf --model runs/qwen3-8b-dime-grpo/checkpoint-300 --out runs/eval --name finetuned
    dime-eval --policy openai --base-url http://localhost:8000/v1 --model Qwen/Qwen3-8B --out runs/eval
    dime-eval --policy mypkg.agents:MyAgent --tasks retry_storm,zombie_node --seeds 10
    dime-eval run ... --resume                                          # continue an interrupted run
    dime-eval compare runs/eval/zero-shot.summary.json runs/eval/finetuned.summary.json
    dime-eval plot runs/eval/*.summary.json --out bars.png
    dime-eval timeline runs/eval/finetuned.jsonl --task retry_storm --seed 3 --out timeline.png
    dime-eval report runs/eval/finetuned.jsonl                          # re-summarise a results file

``run`` is the default subcommand. Exit codes: 0 done, 1 stopped (endpoint down; resumable),
2 bad arguments or a failing user policy (an exception or an invalid action, named with its task,
seed and step), 130 interrupted (resumable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("run", "compare", "plot", "timeline", "report")
DEFAULT_POLICIES = "noop,random,threshold,oracle"


def make_parser() -> argparse.ArgumentParser:
    from dime_gym.policies import BUILTIN_POLICIES
    from dime_trainer.helptext import plain

    description, examples = (plain(part) for part in __doc__.split("\n\n", 1))
    parser = argparse.ArgumentParser(prog="dime-eval", description=description, epilog=examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    # `dime-eval --help` shows this parser: run is the default subcommand, so its options come first
    run = sub.add_parser("run", help="evaluate policies (the default subcommand)", usage="dime-eval [run] [options]",
                         description=f"{description}\n\nother subcommands: {', '.join(SUBCOMMANDS[1:])} "
                                     "(dime-eval SUBCOMMAND --help)",
                         epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = run.add_argument_group("protocol")
    g.add_argument("--policy", "--policies", dest="policies", default=DEFAULT_POLICIES,
                   help=f"comma-separated: built-ins ({', '.join(BUILTIN_POLICIES)}; blind probes "
                        "blind_t<percent>_s<scale-ups>, e.g. blind_t80_s1), language models (hf, vllm, "
                        "openai), or your own module:callable / path/file.py:callable (default: %(default)s)")
    g.add_argument("--tasks", default="all", help="comma-separated task ids, or 'all'")
    g.add_argument("--split", choices=("public", "heldout"), default="public",
                   help="public: seeds 0-99; heldout: 1,000,000-1,000,099 (never used for training data)")
    g.add_argument("--seeds", type=int, default=None, help="the first N seeds of the split (default: all 100)")
    g.add_argument("--seed-list", default=None, help="explicit seeds instead of a split, e.g. '0,5,10-19'")
    g.add_argument("--max-steps", type=int, default=None, help="cut episodes short (smoke tests; not the benchmark)")
    o = run.add_argument_group("results")
    o.add_argument("--out", default=None, help="results directory (default: runs/dime-eval/<timestamp>)")
    o.add_argument("--name", default=None, help="run name, i.e. file names <out>/<name>.jsonl|.summary.json|.md")
    o.add_argument("--resume", action="store_true", help="continue existing results files, skipping finished episodes")
    o.add_argument("--overwrite", action="store_true", help="replace existing results files")
    o.add_argument("--max-episodes", type=int, default=None, help="stop after this many new episodes (resume later)")
    o.add_argument("--no-steps", dest="record_steps", action="store_false", help="leave per-step traces out of the results")
    o.add_argument("--quiet", action="store_true", help="no progress line")
    m = run.add_argument_group("language models (hf, vllm, openai)")
    m.add_argument("--model", help="model directory, LoRA adapter directory or hub id; the endpoint's model name")
    m.add_argument("--adapter", help="LoRA adapter directory on top of --model")
    m.add_argument("--temperature", type=float, default=0.6, help="0 = greedy (default %(default)s)")
    m.add_argument("--top-p", type=float, default=0.95)
    m.add_argument("--top-k", type=int, default=20, help="0 = off")
    m.add_argument("--min-p", type=float, default=0.0)
    m.add_argument("--max-new-tokens", type=int, default=1024)
    m.add_argument("--enable-thinking", action=argparse.BooleanOptionalAction, default=False,
                   help="Qwen3 thinking mode (default off, as in training)")
    m.add_argument("--system-prompt", default=None, help="file holding a system prompt to use instead of DIME's")
    m.add_argument("--batch-size", type=int, default=64, help="episodes played in lockstep (one generate call per step)")
    m.add_argument("--sampling-seed", type=int, default=0, help="seeds every request together with (task, seed, step)")
    m.add_argument("--device", default=None, help="hf: torch device (default cuda if available)")
    m.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"), help="hf/vllm")
    m.add_argument("--gpu-memory-utilization", type=float, default=0.85, help="vllm")
    m.add_argument("--max-model-len", type=int, default=None, help="vllm")
    m.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm")
    m.add_argument("--base-url", default=None, help="openai: e.g. http://localhost:8000/v1")
    m.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable holding the key")
    m.add_argument("--timeout", type=float, default=120.0,
                   help="openai: wall-clock seconds per request attempt, from connecting to the last byte")
    m.add_argument("--retries", type=int, default=3, help="openai: retries per request (exponential backoff)")
    m.add_argument("--backoff", type=float, default=1.0,
                   help="openai: first retry delay in seconds (doubles per retry, +-50%% jitter; a longer Retry-After "
                        "on HTTP 429/503 is honoured, within a bound)")
    m.add_argument("--concurrency", type=int, default=32, help="openai: parallel requests")
    m.add_argument("--standard-params-only", action="store_true",
                   help="openai: send only OpenAI's own fields (no top_k, min_p, chat_template_kwargs)")
    m.add_argument("--abort-after-failed-steps", type=int, default=20,
                   help="stop when every request failed this many steps in a row")
    m.add_argument("--abort-after-failed-seconds", type=float, default=600.0,
                   help="stop when every request failed for this long (wall clock), however few the steps")
    run.add_argument("--policy-kwargs", default=None, help="JSON keyword arguments for a module:Class user policy")

    cmp = sub.add_parser("compare", help="per-task difference of two runs, with intervals and a significance test")
    cmp.add_argument("a", help="baseline: a .summary.json or a results .jsonl")
    cmp.add_argument("b", help="candidate: a .summary.json or a results .jsonl")
    cmp.add_argument("--json", dest="json_path", default=None, help="also write the comparison as JSON")
    plot = sub.add_parser("plot", help="per-task score bars of several runs side by side")
    plot.add_argument("files", nargs="+", help=".summary.json or .jsonl files")
    plot.add_argument("--out", default="dime-eval-scores.png")
    tl = sub.add_parser("timeline", help="one episode step by step: node CPU/memory, p99, actions")
    tl.add_argument("results", help="a results .jsonl")
    tl.add_argument("--task", default=None)
    tl.add_argument("--seed", type=int, default=None)
    tl.add_argument("--out", default="dime-eval-timeline.png")
    rep = sub.add_parser("report", help="summarise results files again (Markdown to stdout, summary JSON next to them)")
    rep.add_argument("files", nargs="+", help="results .jsonl files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:  # run is the default, also for --help
        argv = ["run", *argv]
    args = make_parser().parse_args(argv)
    from dime_trainer.evaluation import commands

    handler = {"run": commands.run, "compare": commands.compare, "plot": commands.plot, "timeline": commands.timeline,
               "report": commands.report}[args.command]
    try:
        return handler(args)
    except commands.UsageError as exc:
        print(f"dime-eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
