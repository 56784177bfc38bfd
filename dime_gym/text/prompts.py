"""Prompt rendering: the system prompt and the per-step user message a language model sees.

The system prompt is the seed's Quick Start prompt (SRE persona, node roles, the 10 triage
rules, the output format), with every number taken from the simulator and the oracle's single
definitions, plus the command list. The user message is ``"Current system state:"`` and the
observation as JSON: stable key order, fixed precision (``DISPLAY_DECIMALS``, the precision the
oracle reads too), dropout shown as -1, node sets as index lists, then the task hint, what the
last command did, its rejection reasons and any log lines it returned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from dime_gym.core.params import (
    DEFAULT_CLOUD_CREDITS,
    OOM_THRESHOLD,
    QUERY_LOGS_VISIBLE_STEPS,
    RESTART_COOLDOWN_STEPS,
    RESTART_STEPS,
    SLO_P99_MS,
    default_params,
)
from dime_gym.core.state import ERROR_BUDGET_MAX, N_NODES, STEP_SECONDS
from dime_gym.observation import display_observation
from dime_gym.oracle import RULES
from dime_gym.actions import UNPARSABLE_NAME
from dime_gym.commands import COMMAND_FORMS

USER_PREFIX = "Current system state:\n"
USER_SUFFIX = "\nWhat action should be taken?"
OUTPUT_FORMAT = '<reasoning>One sentence identifying which rule applies.</reasoning>\n<action>{"command": "kubectl ..."}</action>'
LAST_COMMAND_STATUSES = ("applied", "rejected", UNPARSABLE_NAME)
# What of an answer is echoed into the next prompt (``last_command``) is cut to these lengths
# and escaped to printable ASCII, so a model cannot inject long or hidden text into its next
# prompt (or a dime-eval request), and the user message stays inside the text observation space.
MAX_ECHO_COMMAND_CHARS = 200
MAX_ECHO_DETAIL_CHARS = 600


def _command_help() -> tuple[str, ...]:
    """What each command does, one line per action kind (``COMMAND_FORMS`` order)."""
    p = default_params()
    effects = (
        "do nothing this step (kubectl get pods is the same)",
        f"restart node i: down for {RESTART_STEPS} steps, memory and queue cleared; "
        f"at most once per {RESTART_COOLDOWN_STEPS} steps per node",
        "move half of worker a's share of traffic to worker b (workers 1-7 only)",
        f"add ONE temporary worker replica whatever --replicas says: costs 1 cloud credit, "
        f"cold for {int(p['replica_cold_steps'])} steps, lives {int(p['replica_ttl_steps'])} steps",
        "admit that fraction of incoming traffic (steps of 0.05); requests turned away count as lost",
        f"read node i's recent logs; its telemetry stays visible for {QUERY_LOGS_VISIBLE_STEPS} steps",
    )
    return tuple(f"- {form}: {effect}" for form, effect in zip(COMMAND_FORMS, effects, strict=True))


def build_system_prompt() -> str:
    """The default system prompt, rendered from the simulator's and the oracle's definitions."""
    lines = [
        f"You are an autonomous SRE agent managing an {N_NODES}-node Kubernetes cluster.",
        "Node-0 is the PostgreSQL database (SPOF): while it is down nothing is served. "
        f"Nodes 1-{N_NODES - 1} are stateless workers behind a load balancer.",
        "",
        f"Each step is {STEP_SECONDS:g} seconds. You see the cluster state as JSON: per-node lists are "
        "indexed by node; cpu_loads and mem_utilizations are fractions, and -1 in them or in "
        "queue_lengths means that node's telemetry was dropped (kubectl logs node-<i> reveals it); failed_nodes and restarting_nodes list node "
        f"indices; latencies are in ms and request_rate in requests/s. A node whose memory reaches "
        f"{OOM_THRESHOLD:g} is OOM-killed. The p99 latency SLO is {SLO_P99_MS:g} ms; error_budget "
        f"(0-{ERROR_BUDGET_MAX:g}) burns while requests are lost or slow, and once it is empty a throttle "
        f"may only be loosened. cloud_budget (starts near {DEFAULT_CLOUD_CREDITS:g}) pays for scale-ups. "
        "last_command says what your previous command did.",
        "",
        "COMMANDS (exactly one per answer):",
        *_command_help(),
        "",
        "TRIAGE PRIORITY (check in order; the first rule that applies decides):",
        *(f"{rule.id}. {rule.text}" for rule in RULES),
        "",
        "Output format:",
        OUTPUT_FORMAT,
    ]
    return "\n".join(lines)


SYSTEM_PROMPT = build_system_prompt()


def echo_text(text: str, limit: int) -> str:
    """``text`` as it may be echoed into a prompt: at most ``limit`` characters (cut with
    "..."), every character outside printable ASCII written as a ``\\xNN``/``\\uNNNN`` escape."""
    head = text[: limit + 1]  # never look at more than is shown
    shown = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in head)
    return shown if len(shown) <= limit and len(head) == len(text) else shown[: limit - 3] + "..."


def last_command_report(command: str, status: str, detail: str = "") -> dict:
    """The ``last_command`` entry of the next prompt: what the agent sent and what came of it
    (``status`` one of ``LAST_COMMAND_STATUSES``), so a model can correct itself. ``command``
    and ``detail`` are bounded and sanitised (:func:`echo_text`, ``MAX_ECHO_*_CHARS``)."""
    if status not in LAST_COMMAND_STATUSES:
        raise ValueError(f"status {status!r} is not one of {LAST_COMMAND_STATUSES}")
    return {"command": echo_text(command, MAX_ECHO_COMMAND_CHARS), "status": status,
            "detail": echo_text(detail, MAX_ECHO_DETAIL_CHARS)}


def step_report(command: str, action_errors, notes=()) -> dict:
    """``last_command`` for a command the env took: ``rejected`` with the env's reasons if it
    refused it, else ``applied`` with the grammar's tolerance notes."""
    if action_errors:
        return last_command_report(command, "rejected", "; ".join(action_errors))
    return last_command_report(command, "applied", ", ".join(notes))


def state_json(obs: Mapping, info: Mapping | None = None, last_command: Mapping | None = None) -> dict:
    """The values of the user message's JSON, in order: the observation at display precision,
    then ``task_hint``, ``last_command`` (``None`` at reset), ``action_errors`` and, only after a
    ``query_logs``, ``logs``. ``info`` is the env's info dict (may be ``None``)."""
    info = info or {}
    state = display_observation(obs)
    state["task_hint"] = info.get("task_hint", "")
    state["last_command"] = dict(last_command) if last_command is not None else None
    state["action_errors"] = list(info.get("action_errors", ()))
    if info.get("logs"):
        state["logs"] = list(info["logs"])
    return state


def format_state(state: Mapping) -> str:
    """The JSON text of a ``state_json`` dict: one top-level key per line, compact values,
    ASCII only. One ``json.dumps`` call, then a line break before each top-level key (the
    pattern ``, "key": `` cannot occur inside a JSON string, whose quotes are escaped, and
    nested keys never repeat a top-level name)."""
    text = json.dumps(state)
    for key in list(state)[1:]:
        text = text.replace(f', "{key}": ', f',\n  "{key}": ', 1)
    return "{\n  " + text[1:-1] + "\n}"


def render_user_message(obs: Mapping, info: Mapping | None = None, last_command: Mapping | None = None) -> str:
    """The user message for one observation: ``"Current system state:"`` + JSON + question."""
    return USER_PREFIX + format_state(state_json(obs, info, last_command)) + USER_SUFFIX


def chat_messages(user_message: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """A chat ``messages`` list, ready for ``tokenizer.apply_chat_template``."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user_message}]


def render_messages(
    obs: Mapping,
    info: Mapping | None = None,
    last_command: Mapping | None = None,
    system_prompt: str = SYSTEM_PROMPT,
) -> list[dict[str, str]]:
    """System prompt + user message for one observation (see :func:`state_json`)."""
    return chat_messages(render_user_message(obs, info, last_command), system_prompt)


def parse_state(user_message: str) -> dict:
    """The JSON values back from a user message (for analysis and the oracle on text)."""
    if not (user_message.startswith(USER_PREFIX) and user_message.endswith(USER_SUFFIX)):
        raise ValueError("not a DIME user message: expected 'Current system state:' + JSON + question")
    return json.loads(user_message[len(USER_PREFIX) : len(user_message) - len(USER_SUFFIX)])


__all__ = [
    "LAST_COMMAND_STATUSES", "MAX_ECHO_COMMAND_CHARS", "MAX_ECHO_DETAIL_CHARS", "OUTPUT_FORMAT", "SYSTEM_PROMPT", "USER_PREFIX", "USER_SUFFIX",
    "build_system_prompt", "chat_messages", "echo_text", "format_state", "last_command_report", "parse_state", "step_report",
    "render_messages", "render_user_message", "state_json",
]
