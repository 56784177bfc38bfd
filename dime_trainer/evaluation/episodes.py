"""One evaluated episode: its per-step trace, its end-of-episode metrics and the success rule.

Per step the trace keeps what the agent did (action, canonical command, outcome) and what the
cluster did (reward and its seven components, the grader's running score, true node CPU and
memory, which nodes were down, p99, offered / served / good traffic, throttle). For language
models it also keeps the raw answer (up to ``MAX_RECORDED_ANSWER_CHARS`` characters; a longer
one is stored cut, ending in ``RECORDED_ANSWER_CUT`` with its full length), the parse outcome
and the generation length.

**Success.** An episode succeeds when the SLO was kept through the incident at a sane cost:
the database was down at most a tenth of the steps (availability >= 0.9: a deliberate restart,
or a crash restarted at once, not one left to kubelet's backoff), at least 80 % of the offered requests were
served within the SLO latency (goodput >= 0.8), p99 met the SLO in at least 80 % of the steps
(SLO attainment >= 0.8), and the actions cost at most half the grader's friction allowance
(resource cost <= 0.5, which spamming scale-ups or restarts exceeds). All four are the
grader's own tallies (``grade_components``), with fixed thresholds, the same for every task.
On the public split doing nothing succeeds in under 1 % of episodes and the observation-blind
probes in at most 0.1 %; the threshold baseline succeeds in 27 %, the triage oracle in 38 %, the
scripted reference solution in 67 % and the lookahead planner in 82 % (on every task but
flash_crowd and cascading_failure, whose faults cost more than a fifth of the traffic whatever
one does): a fault handled well is a success, a blanket response is not.
"""

from __future__ import annotations

import numpy as np

from dime_gym import DB, REWARD_COMPONENTS, STATE_DTYPE, serving_mask
from dime_gym.actions import ACTION_KINDS, UNPARSABLE, UNPARSABLE_NAME
from dime_gym.scenarios.graders import grade_components

MAX_RECORDED_ANSWER_CHARS = 65_536
RECORDED_ANSWER_CUT = "...[cut: {n} characters in all]"
SUCCESS_RULE = {"min_db_availability": 0.9, "min_goodput": 0.8, "min_slo_attainment": 0.8, "max_resource_cost": 0.5}
ACTION_COUNT_KEYS = (*ACTION_KINDS, UNPARSABLE_NAME, "backend_error")


def recorded_answer(answer: str | None) -> str | None:
    """``answer`` as a results file stores it: cut to ``MAX_RECORDED_ANSWER_CHARS`` characters."""
    if answer is None or len(answer) <= MAX_RECORDED_ANSWER_CHARS:
        return answer
    marker = RECORDED_ANSWER_CUT.format(n=len(answer))
    return answer[: MAX_RECORDED_ANSWER_CHARS - len(marker)] + marker


def is_success(db_availability: float, goodput: float, slo_attainment: float, resource_cost: float) -> bool:
    """The success rule (see the module docstring)."""
    return (db_availability >= SUCCESS_RULE["min_db_availability"] and goodput >= SUCCESS_RULE["min_goodput"]
            and slo_attainment >= SUCCESS_RULE["min_slo_attainment"] and resource_cost <= SUCCESS_RULE["max_resource_cost"])


class Trace:
    """Per-step record of one episode, filled as it runs: the state record after every step
    (one memory copy each), the action and the running score; columns are cut out at the end."""

    def __init__(self, steps: int, text: bool = False):
        self.n = 0
        self.states = np.zeros(steps, dtype=STATE_DTYPE)
        self.actions = np.zeros((steps, 4), dtype=np.int64)
        self.scores = np.zeros(steps)
        self.status: list[str] = []
        self.errors: list[list[str]] = []
        self.text = {"answer": [], "parse_error": [], "rescues": [], "completion_tokens": [], "finish_reason": [],
                     "backend_error": []} if text else None

    def record(self, action, state, score: float, errors: list[str], status: str) -> None:
        """Append one step: the action applied, the state after it, the running score."""
        t = self.n
        self.states[t] = state
        self.actions[t] = action
        self.scores[t] = score
        self.status.append(status)
        self.errors.append(list(errors))
        self.n = t + 1

    @property
    def recorded(self) -> np.ndarray:
        """The state records of the steps so far."""
        return self.states[: self.n]

    def record_text(self, answer: str | None, parse_error: str | None, rescues, completion_tokens, finish_reason,
                    backend_error: str | None) -> None:
        """The language-model side of the step just recorded (the answer cut by :func:`recorded_answer`)."""
        for key, value in zip(self.text, (recorded_answer(answer), parse_error, list(rescues), completion_tokens, finish_reason, backend_error),
                              strict=True):
            self.text[key].append(value)

    def action_counts(self) -> dict[str, int]:
        """Steps per action kind; unparsable answers and backend failures are their own kinds."""
        kinds = self.actions[: self.n, 0]
        backend = np.array([s == "backend_error" for s in self.status], dtype=bool)
        counts = {name: int(np.sum((kinds == k) & ~backend)) for k, name in enumerate(ACTION_KINDS)}
        counts[UNPARSABLE_NAME] = int(np.sum(kinds == UNPARSABLE))
        counts["backend_error"] = int(backend.sum())
        return counts

    def to_json(self) -> dict:
        """The trace as JSON-ready columns (floats rounded to what plots and analysis need)."""
        from dime_gym.commands import format_action

        n, st = self.n, self.recorded
        actions = self.actions[:n].tolist()
        commands: dict[tuple, str | None] = {}
        for a in map(tuple, actions):
            if a not in commands:
                commands[a] = None if a[0] == UNPARSABLE else format_action(a)
        down = ~serving_mask(st)
        out = {
            "action": actions,
            "command": [commands[tuple(a)] for a in actions],
            "status": self.status,
            "errors": self.errors,
            "reward": np.round(st["reward"], 4).tolist(),
            "score": np.round(self.scores[:n], 4).tolist(),
            "p99_ms": np.round(st["latency_p99_ms"], 1).tolist(),
            "offered_rps": np.round(st["offered_rps"], 2).tolist(),
            "served_rps": np.round(st["served_total_rps"], 2).tolist(),
            "good_rps": np.round(st["good_rps"], 2).tolist(),
            "throttle": np.round(st["throttle_rate"], 2).tolist(),
            "error_budget": np.round(st["error_budget"], 1).tolist(),
            "reward_components": {name: np.round(st["reward_components"][:, i], 4).tolist()
                                  for i, name in enumerate(REWARD_COMPONENTS)},
            "cpu": np.round(st["cpu"], 3).tolist(),
            "mem": np.round(st["mem"], 3).tolist(),
            "down_nodes": [np.flatnonzero(row).tolist() for row in down],
            "queue": np.round(st["queue"], 0).tolist(),
            # per node: 0 serving, 1 failed, 2 restarting, 3 zombie (what dime_gym.render draws)
            "node_status": np.select([st["failed"] != 0, st["restart_left"] != 0, st["zombie"] != 0], [1, 2, 3], 0).tolist(),
        }
        if self.text is not None:
            out.update(self.text)
        return out


def episode_record(task: str, seed: int, trace: Trace, final_state, final_score: float, wall_s: float,
                   record_steps: bool = True) -> dict:
    """The JSON record of a finished episode: identity, metrics, action counts and the trace."""
    steps = int(final_state["step"])
    graded = {k: float(v) for k, v in grade_components(final_state).items()}
    st = trace.recorded
    offered = float(st["offered_rps"].sum())
    served = float(st["served_total_rps"].sum())
    counts = trace.action_counts()
    invalid = int(final_state["n_invalid_actions"])
    record = {
        "type": "episode",
        "task": task,
        "seed": int(seed),
        "steps": steps,
        "score": float(final_score),
        "return": float(st["reward"].sum()),
        "success": is_success(graded["availability"], graded["goodput"], graded["slo_attainment"], graded["resource_cost"]),
        "goodput": graded["goodput"],
        "served_fraction": served / offered if offered > 0 else 1.0,
        "db_availability": graded["availability"],
        "db_downtime_steps": steps - int(final_state["steps_db_up"]),
        "slo_attainment": graded["slo_attainment"],
        "resource_cost": graded["resource_cost"],
        "invalid_rate": invalid / max(1, steps),
        "unparsable_rate": counts[UNPARSABLE_NAME] / max(1, steps),
        "backend_error_rate": counts["backend_error"] / max(1, steps),
        "credits_spent": float(final_state["credits_spent"]),
        "db_down_at_end": not bool(serving_mask(st[-1])[DB]) if trace.n else False,
        "actions": counts,
        "wall_s": round(wall_s, 4),
    }
    if trace.text is not None:
        tokens = [t for t in trace.text["completion_tokens"] if t is not None]
        record["completion_tokens_mean"] = float(np.mean(tokens)) if tokens else None
        record["truncated_answers"] = sum(1 for f in trace.text["finish_reason"] if f == "length")
    if record_steps:
        record["trace"] = trace.to_json()
    return record
