"""From episode records to the benchmark's numbers: per-task metrics, the overall mean task
score, the DIME index, and the comparison of two runs.

**DIME index** (fixed formula, no normalisation by any run's data)::

    DIME index = 100 x mean over the 14 tasks of (0.5 x mean score_t + 0.5 x success rate_t)

Every task weighs the same whatever its number of seeds; score and success are both in [0, 1],
so the index is in [0, 100]. It is reported only when all 14 tasks were evaluated
(``dime_index_partial`` gives the same formula over the tasks present). Its 95 % interval
treats tasks as independent: 1.96 x sqrt(sum of the per-task squared standard errors) / 14.
The mean task score's interval is computed the same way. A task with a single seed has no
standard error, so these intervals (and its own) are NaN, shown as "–".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

import numpy as np

from dime_gym.scenarios import TASK_IDS
from dime_trainer.evaluation import stats
from dime_trainer.evaluation.episodes import ACTION_COUNT_KEYS, SUCCESS_RULE

INDEX_WEIGHTS = {"score": 0.5, "success": 0.5}
SUMMARY_FORMAT = "dime-eval-summary/1"
MIN_PAIRS = 2  # shared seeds needed for a paired comparison of a task
MEAN_KEYS = ("db_downtime_steps", "db_availability", "slo_attainment", "served_fraction", "goodput", "resource_cost",
              "invalid_rate", "unparsable_rate", "backend_error_rate", "return", "steps")


def _mean(values: Iterable[float]) -> float:
    x = [v for v in values if v is not None]
    return float(np.mean(x)) if x else math.nan


def select_episodes(episodes: Iterable[dict], tasks: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> list[dict]:
    """The episodes of the requested tasks and seeds, first record of each (task, seed) kept,
    in task order then seed order."""
    task_set = set(tasks) if tasks is not None else None
    seed_set = set(seeds) if seeds is not None else None
    seen: dict[tuple[str, int], dict] = {}
    for ep in episodes:
        key = (ep["task"], int(ep["seed"]))
        if (task_set is None or key[0] in task_set) and (seed_set is None or key[1] in seed_set) and key not in seen:
            seen[key] = ep
    order = {t: i for i, t in enumerate(tasks or TASK_IDS)}
    return [seen[k] for k in sorted(seen, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))]


def task_summary(eps: Sequence[dict]) -> dict:
    """Metrics of one task over its episodes (means per episode unless named otherwise)."""
    scores = [float(e["score"]) for e in eps]
    successes = sum(bool(e["success"]) for e in eps)
    mean, half = stats.mean_ci(scores)
    term = [INDEX_WEIGHTS["score"] * e["score"] + INDEX_WEIGHTS["success"] * float(e["success"]) for e in eps]
    out = {
        "n": len(eps),
        "seeds": [int(e["seed"]) for e in eps],
        "scores": [round(s, 6) for s in scores],
        "score_mean": mean,
        "score_ci95": half,
        "score_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan,
        "score_se": stats.standard_error(scores),
        "success_rate": successes / len(eps),
        "success_ci95": list(stats.wilson(successes, len(eps))),
        "index_term": float(np.mean(term)),
        "index_term_se": stats.standard_error(term),
        "actions_per_episode": {k: _mean(e["actions"].get(k, 0) for e in eps) for k in ACTION_COUNT_KEYS},
    }
    out.update({k: _mean(e.get(k) for e in eps) for k in MEAN_KEYS})
    if any("completion_tokens_mean" in e for e in eps):
        out["completion_tokens_mean"] = _mean(e.get("completion_tokens_mean") for e in eps)
        out["truncated_answers"] = int(sum(e.get("truncated_answers", 0) for e in eps))
    return out


def overall_summary(per_task: dict[str, dict]) -> dict:
    """Mean task score, success rate and the DIME index over the tasks present."""
    tasks = list(per_task)
    n = len(tasks)
    if n == 0:
        return {"tasks_evaluated": 0, "complete": False, "episodes": 0, "mean_task_score": math.nan,
                "mean_task_score_ci95": math.nan, "success_rate": math.nan, "dime_index": None,
                "dime_index_partial": math.nan, "dime_index_ci95": math.nan}
    complete = set(tasks) == set(TASK_IDS)
    score_se = math.sqrt(sum(per_task[t]["score_se"] ** 2 for t in tasks)) / n
    index_se = math.sqrt(sum(per_task[t]["index_term_se"] ** 2 for t in tasks)) / n
    index = 100.0 * float(np.mean([per_task[t]["index_term"] for t in tasks]))
    out = {
        "tasks_evaluated": n,
        "complete": complete,
        "episodes": int(sum(per_task[t]["n"] for t in tasks)),
        "mean_task_score": float(np.mean([per_task[t]["score_mean"] for t in tasks])),
        "mean_task_score_ci95": stats.Z975 * score_se,
        "success_rate": float(np.mean([per_task[t]["success_rate"] for t in tasks])),
        "dime_index": index if complete else None,
        "dime_index_partial": index,
        "dime_index_ci95": 100.0 * stats.Z975 * index_se,
    }
    for k in MEAN_KEYS:
        out[k] = float(np.mean([per_task[t][k] for t in tasks]))
    return out


def summarize(episodes: Iterable[dict], run: dict, tasks: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> dict:
    """The summary of a run: ``run`` (its header), ``tasks`` (per-task metrics) and ``overall``."""
    eps = select_episodes(episodes, tasks, seeds)
    by_task: dict[str, list[dict]] = {}
    for ep in eps:
        by_task.setdefault(ep["task"], []).append(ep)
    per_task = {t: task_summary(v) for t, v in by_task.items()}
    return {"format": SUMMARY_FORMAT, "run": run, "definitions": definitions(), "tasks": per_task,
            "overall": overall_summary(per_task)}


def definitions() -> dict:
    """The fixed rules every summary is computed with (copied into it for the record)."""
    return {"success": dict(SUCCESS_RULE), "dime_index": "100 * mean over tasks of (0.5 * mean score + 0.5 * success rate)",
            "score_ci95": "Student-t 95 % half-width over seeds", "index_weights": dict(INDEX_WEIGHTS)}


def tasks_in(summaries: Iterable[dict]) -> list[str]:
    """The tasks of several summaries, each once, in the order they first appear."""
    tasks: list[str] = []
    for s in summaries:
        tasks += [t for t in s["tasks"] if t not in tasks]
    return tasks


def prompt_digest(text: str | None) -> str | None:
    """Short SHA-256 of a system prompt (to tell runs with different prompts apart)."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- comparing two runs -------------------------------------------------------------------------
def _task_comparison(a: dict, b: dict) -> dict:
    """``B - A`` on one task: paired by seed when the runs share at least ``MIN_PAIRS`` seeds
    (only those are used), otherwise every episode of each run as independent samples.
    ``_groups`` holds the scores used, ``_diffs`` the paired differences."""
    sa = dict(zip(a["seeds"], a["scores"], strict=True))
    sb = dict(zip(b["seeds"], b["scores"], strict=True))
    common = sorted(set(sa) & set(sb))
    if len(common) >= MIN_PAIRS:
        xa, xb = np.array([sa[s] for s in common]), np.array([sb[s] for s in common])
        diffs = xb - xa
        mean_diff, half = stats.mean_ci(diffs)
        return {"paired": True, "n_a": len(common), "n_b": len(common), "a": float(xa.mean()), "b": float(xb.mean()),
                "diff": mean_diff, "diff_ci95": half, "diff_se": stats.standard_error(diffs),
                "p": stats.paired_permutation_p([diffs]), "_diffs": diffs, "_groups": (xa, xb)}
    xa, xb = np.array(a["scores"]), np.array(b["scores"])
    return {"paired": False, "n_a": int(xa.size), "n_b": int(xb.size), "a": float(xa.mean()), "b": float(xb.mean()),
            "diff": float(xb.mean() - xa.mean()), "diff_ci95": stats.welch_ci(xa, xb),
            "diff_se": math.sqrt(stats.standard_error(xa) ** 2 + stats.standard_error(xb) ** 2),
            "p": stats.unpaired_permutation_p([(xa, xb)]), "_groups": (xa, xb)}


def compare(a: dict, b: dict) -> dict:
    """Per-task and overall ``B - A`` of two summaries, with 95 % intervals and two-sided
    permutation p-values (paired by seed where the runs share at least ``MIN_PAIRS`` seeds,
    Holm-adjusted across tasks). The overall test uses the same episodes as the per-task rows:
    sign flips when every task is paired, else label permutation within each task.
    ``warnings`` lists protocol differences that make the comparison questionable."""
    tasks = [t for t in a["tasks"] if t in b["tasks"]]
    rows = {t: _task_comparison(a["tasks"][t], b["tasks"][t]) for t in tasks}
    for t, p_adj in zip(tasks, stats.holm([rows[t]["p"] for t in tasks]), strict=True):
        rows[t]["p_holm"] = p_adj
    overall: dict = {"tasks": len(tasks)}
    if tasks:
        all_paired = all(rows[t]["paired"] for t in tasks)
        overall.update(
            paired=all_paired,
            a=float(np.mean([rows[t]["a"] for t in tasks])),
            b=float(np.mean([rows[t]["b"] for t in tasks])),
            diff=float(np.mean([rows[t]["diff"] for t in tasks])),
            diff_ci95=stats.Z975 * math.sqrt(sum(rows[t]["diff_se"] ** 2 for t in tasks)) / len(tasks),
            p=(stats.paired_permutation_p([rows[t]["_diffs"] for t in tasks]) if all_paired else
               stats.unpaired_permutation_p([rows[t]["_groups"] for t in tasks])),
        )
    for row in rows.values():
        row.pop("_diffs", None)
        row.pop("_groups", None)
    oa, ob = a["overall"], b["overall"]
    overall["dime_index"] = {"a": oa.get("dime_index"), "b": ob.get("dime_index")}
    overall["success_rate"] = {"a": oa.get("success_rate"), "b": ob.get("success_rate")}
    return {"a": a["run"].get("name"), "b": b["run"].get("name"), "tasks": rows, "overall": overall,
            "test": "two-sided permutation test of the mean difference (sign-flip when paired by seed, "
                    "label permutation otherwise), Holm-adjusted across tasks",
            "warnings": protocol_warnings(a, b, tasks)}


def protocol_warnings(a: dict, b: dict, tasks: Sequence[str]) -> list[str]:
    """Differences between two runs' protocols that a reader must know about."""
    ra, rb = a["run"], b["run"]
    warnings = []
    for key, what in (("split", "seed split"), ("max_steps", "episode length limit"),
                      ("system_prompt_sha256", "system prompt"), ("dime_version", "dime_gym version")):
        if ra.get(key) != rb.get(key):
            warnings.append(f"different {what}: {ra.get(key)!r} vs {rb.get(key)!r}")
    missing = sorted(set(a["tasks"]) ^ set(b["tasks"]))
    if missing:
        warnings.append(f"tasks in only one run (left out): {', '.join(missing)}")
    unpaired = [t for t in tasks if set(a["tasks"][t]["seeds"]) != set(b["tasks"][t]["seeds"])]
    if unpaired:
        warnings.append(f"seeds differ on {len(unpaired)} task(s); those use the shared seeds (if at least "
                        f"{MIN_PAIRS}) or an unpaired test")
    return warnings
