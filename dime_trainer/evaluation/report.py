"""Markdown reports: one run in detail, several runs side by side, and a comparison of two."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dime_trainer.evaluation.summary import tasks_in

_ACTION_COLUMNS = (("restart", "restart"), ("reroute", "reroute"), ("scale_up", "scale"), ("throttle", "throttle"),
                   ("query_logs", "logs"))


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f} %"


def _num(x: float | None, digits: int = 3) -> str:
    """``x`` rounded, or "–" when it is missing (None, e.g. NaN read back from JSON, or NaN)."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pm(x: float | None, half: float | None, digits: int = 3) -> str:
    """``x ± half`` ("–" for a missing part, e.g. the interval of a single seed)."""
    return f"{_num(x, digits)} ± {_num(half, digits)}"


def _seeds_text(run: dict) -> str:
    seeds = run.get("seeds") or []
    if not seeds:
        return "no seeds"
    span = f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else f"{len(seeds)} listed"
    return f"{run.get('split', 'custom')} split, seeds {span} ({len(seeds)} per task)"


def index_line(overall: dict) -> str:
    """The DIME index and mean task score, with intervals (or why the index is missing)."""
    mean = f"mean task score {_pm(overall['mean_task_score'], overall['mean_task_score_ci95'])}"
    success = f"success rate {_pct(overall['success_rate'])}"
    if overall.get("dime_index") is not None:
        return f"**DIME index {_pm(overall['dime_index'], overall['dime_index_ci95'], 1)}** · {mean} · {success}"
    return (f"DIME index not defined: {overall['tasks_evaluated']} of 14 tasks evaluated (same formula over these: "
            f"{_num(overall['dime_index_partial'], 1)}) · {mean} · {success}")


def run_table(summary: dict) -> str:
    """One run: a row per task with score, success and the operational metrics."""
    run = summary["run"]
    text = any("completion_tokens_mean" in t for t in summary["tasks"].values())
    head = ["task", "n", "score (95 % CI)", "success", "DB down", "SLO met", "served", "invalid"]
    if text:
        head += ["unparsable", "failed steps"]
    head += [label for _, label in _ACTION_COLUMNS]
    lines = [f"### {run.get('name')} — {run.get('policy')} · {_seeds_text(run)}", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def row(name: str, t: dict, n: str) -> str:
        cells = [name, n, _pm(t["score_mean"], t["score_ci95"]),
                 _pct(t["success_rate"]), _pct(1 - t["db_availability"]), _pct(t["slo_attainment"]),
                 _pct(t["served_fraction"]), _pct(t["invalid_rate"])]
        if text:
            cells += [_pct(t["unparsable_rate"]), _pct(t["backend_error_rate"])]
        acts = t.get("actions_per_episode")
        cells += [_num(acts[k], 1) if acts else "" for k, _ in _ACTION_COLUMNS]
        return "| " + " | ".join(cells) + " |"

    for task, t in summary["tasks"].items():
        lines.append(row(task, t, str(t["n"])))
    o = summary["overall"]
    if summary["tasks"]:
        lines.append(row("**mean over tasks**", dict(o, score_mean=o["mean_task_score"], score_ci95=o["mean_task_score_ci95"],
                                                     actions_per_episode=None), str(o["episodes"])))
    lines += ["", index_line(o), "",
              "DB down: share of steps with the database down; SLO met: steps with p99 within the SLO (DB up, traffic "
              "served); served: requests completed / offered; invalid: actions rejected or unparsable; action columns: "
              "per episode."]
    return "\n".join(lines)


SCORES_LEGEND = ("score ± half-width of the 95 % interval over seeds (0–1, higher is better); success: episodes with "
                 "the DB down at most 10 % of the steps, goodput and SLO attainment ≥ 0.8 and resource cost ≤ 0.5; DIME index: 100 × mean "
                 "over the 14 tasks of (½ score + ½ success rate).")


def scores_table(summaries: Sequence[dict]) -> str:
    """Several runs side by side: mean score ± 95 % CI per task, then the overall rows."""
    names = [s["run"].get("name", f"run{i}") for i, s in enumerate(summaries)]
    tasks = tasks_in(summaries)
    lines = ["| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for task in tasks:
        cells = []
        for s in summaries:
            t = s["tasks"].get(task)
            cells.append(_pm(t["score_mean"], t["score_ci95"]) if t else "–")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    overall = [s["overall"] for s in summaries]
    lines.append("| **mean over tasks** | " + " | ".join(f"**{_num(o['mean_task_score'])}**" for o in overall) + " |")
    lines.append("| success rate | " + " | ".join(_pct(o["success_rate"]) for o in overall) + " |")
    lines.append("| **DIME index** | " + " | ".join(
        f"**{_num(o['dime_index'], 1)}** ± {_num(o['dime_index_ci95'], 1)}" if o.get("dime_index") is not None else "– (partial)"
        for o in overall) + " |")
    return "\n".join(lines)


def compare_table(result: dict) -> str:
    """The output of ``dime-eval compare``."""
    a, b = result["a"], result["b"]
    lines = [f"### {b} − {a}", "", f"| task | n | {a} | {b} | difference (95 % CI) | p | p (Holm) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for task, r in result["tasks"].items():
        n = f"{r['n_a']}" if r["paired"] else f"{r['n_a']} / {r['n_b']} (unpaired)"
        lines.append(f"| {task} | {n} | {r['a']:.3f} | {r['b']:.3f} | {r['diff']:+.3f} ± {_num(r['diff_ci95'])} | "
                     f"{_p(r['p'])} | {_p(r['p_holm'])} |")
    o = result["overall"]
    if o.get("tasks"):
        lines.append(f"| **mean over tasks** | {o['tasks']} tasks | {o['a']:.3f} | {o['b']:.3f} | "
                     f"**{o['diff']:+.3f} ± {_num(o['diff_ci95'])}** | {_p(o['p'])} | |")
    ia, ib = o["dime_index"]["a"], o["dime_index"]["b"]
    if ia is not None and ib is not None:
        lines += ["", f"DIME index: {a} {ia:.1f}, {b} {ib:.1f} ({ib - ia:+.1f})."]
    lines += ["", f"Test: {result['test']}."]
    lines += [f"Warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
