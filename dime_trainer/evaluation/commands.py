"""The ``dime-eval`` subcommands: ``run``, ``compare``, ``plot``, ``timeline`` and ``report``."""

from __future__ import annotations

import datetime
import json
import math
import pathlib
import platform
import sys
from collections.abc import Sequence

from dime_trainer.evaluation.backends import BackendConfigError
from dime_trainer.evaluation.results import ResultsError, ResultsFile, check_results_path, load_episodes
from dime_trainer.evaluation.summary import SUMMARY_FORMAT, summarize


class UsageError(ValueError):
    """Bad arguments or unusable inputs: reported as ``dime-eval: error: ...`` with exit code 2."""


# --- arguments ----------------------------------------------------------------------------------
def parse_tasks(text: str) -> list[str]:
    from dime_gym.scenarios import TASK_IDS, get_task

    if text.strip() == "all":
        return list(TASK_IDS)
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks:
        raise UsageError("--tasks is empty")
    try:
        for t in tasks:
            get_task(t)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if len(set(tasks)) != len(tasks):
        raise UsageError(f"--tasks lists a task twice: {text}")
    return tasks


def parse_seed_list(text: str) -> list[int]:
    """``'0,5,10-19'`` -> sorted distinct seeds."""
    seeds: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, _, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
            seeds.update(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise UsageError(f"--seed-list must be integers and ranges like '0,5,10-19', got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise UsageError(f"--seed-list needs non-negative seeds, got {text!r}")
    return sorted(seeds)


def split_of(seeds: Sequence[int]) -> str:
    """'public' or 'heldout' if every seed belongs to that split, else 'custom'."""
    from dime_gym.splits import HELDOUT_EVAL_SEEDS, PUBLIC_EVAL_SEEDS

    if seeds and all(s in PUBLIC_EVAL_SEEDS for s in seeds):
        return "public"
    if seeds and all(s in HELDOUT_EVAL_SEEDS for s in seeds):
        return "heldout"
    return "custom"


def resolve_seeds(args) -> tuple[str, list[int]]:
    from dime_gym.splits import HELDOUT_EVAL_SEEDS, PUBLIC_EVAL_SEEDS, TRAIN_SEED_START

    if args.seed_list:
        if args.seeds is not None:
            raise UsageError("give --seeds N (with --split) or --seed-list, not both")
        seeds = parse_seed_list(args.seed_list)
        if any(TRAIN_SEED_START <= s < HELDOUT_EVAL_SEEDS.start for s in seeds):
            print("dime-eval: warning: some seeds are in the training range (10,000+); scores may be inflated",
                  file=sys.stderr)
        return split_of(seeds), seeds
    base = PUBLIC_EVAL_SEEDS if args.split == "public" else HELDOUT_EVAL_SEEDS
    n = len(base) if args.seeds is None else args.seeds
    if not 1 <= n <= len(base):
        raise UsageError(f"--seeds must be in 1..{len(base)} for the {args.split} split, got {n}")
    return args.split, list(base[:n])


def _check_numbers(args) -> None:
    for flag, value, low in (("--max-steps", args.max_steps, 1), ("--max-episodes", args.max_episodes, 1),
                             ("--batch-size", args.batch_size, 1), ("--abort-after-failed-steps", args.abort_after_failed_steps, 1)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be >= {low}, got {value}")
    if not args.abort_after_failed_seconds > 0:
        raise UsageError(f"--abort-after-failed-seconds must be > 0, got {args.abort_after_failed_seconds}")


def _system_prompt(path: str | None) -> str:
    from dime_gym.text import SYSTEM_PROMPT

    if path is None:
        return SYSTEM_PROMPT
    try:
        return pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --system-prompt {path!r}: {exc}") from None


def run_header(agent, split: str, seeds: Sequence[int], tasks: Sequence[str], max_steps, system_prompt, record_steps,
               sampling_seed: int) -> dict:
    """The first line of a results file; ``protocol`` is what ``--resume`` insists on."""
    import dime_gym
    from dime_trainer.evaluation.results import RESULTS_FORMAT
    from dime_trainer.evaluation.summary import prompt_digest

    protocol = dict(agent.protocol, kind=agent.kind, max_steps=max_steps, dime_version=dime_gym.__version__,
                    system_prompt_sha256=prompt_digest(system_prompt) if agent.is_text else None,
                    sampling_seed=sampling_seed if agent.is_text else None)
    return {
        "type": "run", "format": RESULTS_FORMAT, "name": agent.name, "policy": agent.spec,
        "protocol": json.loads(json.dumps(protocol)), "backend": agent.describe, "system_prompt": system_prompt if agent.is_text else None,
        "record_steps": record_steps, "split": split, "seeds": list(seeds), "tasks": list(tasks),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(),
    }


def default_out_dir() -> pathlib.Path:
    return pathlib.Path("runs") / "dime-eval" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


# --- summaries ----------------------------------------------------------------------------------
def _clean(obj):
    """JSON-safe: NaN and infinities become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def run_info(header: dict | None, tasks: Sequence[str], seeds: Sequence[int]) -> dict:
    """The ``run`` block of a summary: the header's identity and protocol, this summary's seeds."""
    header = header or {}
    protocol = header.get("protocol", {})
    return {
        "name": header.get("name"), "policy": header.get("policy"), "split": split_of(seeds), "seeds": list(seeds),
        "tasks": list(tasks), "max_steps": protocol.get("max_steps"), "dime_version": protocol.get("dime_version"),
        "system_prompt_sha256": protocol.get("system_prompt_sha256"), "protocol": protocol,
        "backend": header.get("backend"), "system_prompt": header.get("system_prompt"), "created": header.get("created"),
    }


def summary_from_results(path) -> dict:
    """Summarise every episode of a results file."""
    from dime_gym.scenarios import TASK_IDS

    try:
        header, episodes = load_episodes(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    present = {e["task"] for e in episodes}
    tasks = [t for t in TASK_IDS if t in present] + sorted(present - set(TASK_IDS))
    seeds = sorted({int(e["seed"]) for e in episodes})
    return _clean(summarize(episodes, run_info(header, tasks, seeds), tasks))


def load_summary(path: str) -> dict:
    """A summary from a ``.summary.json`` or a results ``.jsonl``."""
    if path.endswith(".jsonl"):
        return summary_from_results(path)
    try:
        summary = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read summary {path}: {exc}") from None
    if not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT:
        raise UsageError(f"{path} is not a dime-eval summary (format {SUMMARY_FORMAT})")
    return summary


def save_summary(summary: dict, stem: pathlib.Path) -> str:
    """Write ``<stem>.summary.json`` and ``<stem>.md``; returns the Markdown table."""
    from dime_trainer.evaluation.report import run_table

    table = run_table(summary)
    pathlib.Path(f"{stem}.summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    pathlib.Path(f"{stem}.md").write_text(table + "\n", encoding="utf-8")
    return table


def write_summary(rf: ResultsFile, tasks, seeds, out: pathlib.Path, name: str) -> dict:
    """Summarise a run's results file over its tasks and seeds and save the summary."""
    summary = summarize(rf.episodes, run_info(rf.header, tasks, seeds), tasks, seeds)
    expected = len(tasks) * len(seeds)
    summary["run"].update(finished=summary["overall"]["episodes"] == expected, episodes_expected=expected)
    summary = _clean(summary)
    save_summary(summary, out / name)
    return summary


# --- subcommands --------------------------------------------------------------------------------
def run(args) -> int:
    from dime_trainer.evaluation.agents import LM_BACKENDS, build_agent
    from dime_trainer.evaluation.report import SCORES_LEGEND, scores_table
    from dime_trainer.evaluation.runners import (
        BackendUnavailable,
        PolicyError,
        Progress,
        make_jobs,
        run_array_policy,
        run_text_policy,
    )

    tasks = parse_tasks(args.tasks)
    split, seeds = resolve_seeds(args)
    _check_numbers(args)
    specs = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not specs or len(set(specs)) != len(specs):
        raise UsageError(f"--policy needs distinct policies, got {args.policies!r}")
    if sum(s in LM_BACKENDS for s in specs) > 1 or (args.name and len(specs) > 1):
        raise UsageError("a run evaluates at most one language-model backend, and --name needs a single policy")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if args.resume and not args.out:
        raise UsageError("--resume needs the --out directory of the run to continue")
    out = pathlib.Path(args.out) if args.out else default_out_dir()
    system_prompt = _system_prompt(args.system_prompt)

    agents, files = [], []
    try:
        for spec in specs:
            agents.append(build_agent(spec, args))
        if len({a.name for a in agents}) != len(agents):
            raise UsageError("two policies would write the same results file; run them separately with --name")
        headers = [run_header(agent, split, seeds, tasks, args.max_steps, system_prompt, args.record_steps,
                              args.sampling_seed) for agent in agents]
        paths = [out / f"{agent.name}.jsonl" for agent in agents]
        for path, header in zip(paths, headers, strict=True):  # every file, before any is created
            check_results_path(path, header, resume=args.resume, overwrite=args.overwrite)
        for path, header in zip(paths, headers, strict=True):
            files.append(ResultsFile(path, header, resume=args.resume, overwrite=args.overwrite))
    except (BackendConfigError, ResultsError, ValueError, OSError) as exc:
        for f in files:
            f.close()
        for a in agents:
            a.close()
        message = f"cannot write results in {out}: {exc}" if isinstance(exc, OSError) else str(exc)
        raise UsageError(message) from None

    budget, status, summaries = args.max_episodes, 0, []
    try:
        for agent, rf in zip(agents, files, strict=True):
            jobs = make_jobs(tasks, seeds, skip=rf.done)
            if budget is not None:
                jobs, budget = jobs[:budget], budget - len(jobs[:budget])
            progress = Progress(len(jobs), agent.name, enabled=not args.quiet)
            try:
                if agent.is_text:
                    run_text_policy(agent.policy, jobs, rf.write, system_prompt=system_prompt, batch_size=args.batch_size,
                                    max_steps=args.max_steps, sampling_seed=args.sampling_seed, record_steps=args.record_steps,
                                    abort_after_failed_steps=args.abort_after_failed_steps,
                                    abort_after_failed_seconds=args.abort_after_failed_seconds, progress=progress)
                else:
                    run_array_policy(agent.policy, jobs, rf.write, max_steps=args.max_steps, record_steps=args.record_steps,
                                     with_oracle=agent.kind == "array", progress=progress)
            except BackendUnavailable as exc:
                progress.close()
                print(f"dime-eval: stopped: {exc}\nfinished episodes are saved; continue with --resume --out {out}",
                      file=sys.stderr)
                status = 1
            except PolicyError as exc:
                progress.close()
                print(f"dime-eval: error: policy {agent.spec}: {exc}\nfinished episodes are saved in {out}", file=sys.stderr)
                status = 2
            except BackendConfigError as exc:
                progress.close()
                print(f"dime-eval: error: {exc}", file=sys.stderr)
                status = 2
            finally:
                progress.close()
            summaries.append(write_summary(rf, tasks, seeds, out, agent.name))
            if status:
                break
    except KeyboardInterrupt:
        print(f"\ndime-eval: interrupted; finished episodes are saved; continue with --resume --out {out}", file=sys.stderr)
        status = 130
    finally:
        for f in files:
            f.close()
        for a in agents:
            a.close()
    if summaries:
        table = scores_table(summaries)
        print(table)
        print(SCORES_LEGEND)
        if len(summaries) > 1:
            (out / "scores.md").write_text(table + "\n", encoding="utf-8")
        unfinished = [s["run"]["name"] for s in summaries if not s["run"]["finished"]]
        if unfinished and status == 0:
            print(f"dime-eval: partial results for {', '.join(unfinished)}; continue with --resume --out {out}", file=sys.stderr)
    print(f"dime-eval: results in {out}/", file=sys.stderr)
    return status


def compare(args) -> int:
    from dime_trainer.evaluation.report import compare_table
    from dime_trainer.evaluation.summary import compare as compare_summaries

    a, b = load_summary(args.a), load_summary(args.b)
    result = _clean(compare_summaries(a, b))
    if not result["tasks"]:
        raise UsageError(f"{args.a} and {args.b} have no task in common")
    print(compare_table(result))
    if args.json_path:
        pathlib.Path(args.json_path).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def plot(args) -> int:
    from dime_trainer.evaluation import plots

    summaries = [load_summary(p) for p in args.files]
    try:
        plots.save(plots.bars_figure(summaries), args.out)
    except plots.PlotUnavailable as exc:
        raise UsageError(str(exc)) from None
    print(f"dime-eval: wrote {args.out}", file=sys.stderr)
    return 0


def timeline(args) -> int:
    from dime_trainer.evaluation import plots

    try:
        header, episodes = load_episodes(args.results)
    except (OSError, ResultsError) as exc:
        raise UsageError(f"cannot read {args.results}: {exc}") from None
    chosen = [e for e in episodes if (args.task is None or e["task"] == args.task) and (args.seed is None or e["seed"] == args.seed)]
    if not chosen:
        have = ", ".join(f"{e['task']}/{e['seed']}" for e in episodes[:10])
        raise UsageError(f"no episode task={args.task} seed={args.seed} in {args.results} (it has: {have or 'none'} ...)")
    try:
        plots.save(plots.timeline_figure(chosen[0], run_name=(header or {}).get("name")), args.out)
    except (plots.PlotUnavailable, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(f"dime-eval: wrote {args.out} ({chosen[0]['task']} seed {chosen[0]['seed']})", file=sys.stderr)
    return 0


def report(args) -> int:
    from dime_trainer.evaluation.report import SCORES_LEGEND, scores_table

    summaries = []
    for path in args.files:
        summary = summary_from_results(path)
        try:
            print(save_summary(summary, pathlib.Path(path).with_suffix("")) + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write the summary of {path}: {exc}") from None
        summaries.append(summary)
    if len(summaries) > 1:
        print(scores_table(summaries))
        print(SCORES_LEGEND)
    return 0
