"""DIME's action language: parse and format kubectl-style commands.

The grammar sits below the oracle and the environments (it needs only the action encoding of
``dime_gym.core.actions``), so the oracle can name its actions as commands and the text
interface (``dime_gym.text``) can parse a model's answer, with no import cycle between them.

One command string maps to one canonical action ``(kind, node, dest, rate_level)`` (see
:mod:`dime_gym.core.actions`); :func:`format_action` is its exact inverse on canonical actions.
Matching is anchored on the whole command (never a substring search in prose), takes linear
time (input over ``MAX_COMMAND_CHARS`` is refused before any regex, and no regex nests
quantifiers) and never executes anything.

Accepted forms (case-insensitive; surrounding whitespace and trailing ``;``/``.`` ignored):

* no_op: ``no_op``, ``no-op``, ``noop``, ``observe``; read-only ``kubectl get ...`` and
  ``kubectl top ...`` (note ``read_only_command``).
* restart: ``kubectl delete pod node-<i>``, ``kubectl rollout restart [<resource>] <node>``.
* reroute: ``kubectl reroute traffic --from=node-<a> --to=node-<b>``, or any
  ``kubectl exec ... istio|envoy ... traffic shift --from ... --to ...`` (``istio_form``).
* scale_up: ``kubectl scale deployment <name> --replicas=<n>``, or ``aws autoscaling
  set-desired-capacity --auto-scaling-group-name <x> --desired-capacity <n>`` (``aws_form``).
  Every scale command adds exactly ONE temporary replica whatever ``n`` is: ``n`` must be a
  positive integer, and ``n != 1`` gives note ``replicas_ignored``.
* throttle: ``kubectl throttle ingress --rate=<x>``, or ``kubectl annotate ingress ...
  --rate=<x>`` (``annotate_form``). ``x`` is a decimal in [0, 1] or a percent such as ``40%``
  (``percent_rate``); off-grid rates snap to the nearest 0.05 level (``rate_rounded``).
  Rates outside [0, 1] are errors, never clamped.
* query_logs: ``kubectl logs [pod] node-<i>`` (``-f``, ``--tail=N``, ``--since=...`` ignored).

Nodes are written ``node-3``, ``node_3``, ``node3``, ``pod/node-3``, ``deployment/node-3`` or a
bare ``3`` (``bare_node_index``). Flags take ``--flag=value`` or ``--flag value`` in any order;
``-n/--namespace`` is ignored everywhere.
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass
from typing import Callable, NoReturn, Sequence

from dime_gym.core.actions import (
    ACTION_KINDS, NO_OP, QUERY_LOGS, RATE_LEVELS, REROUTE, RESTART, SCALE_UP, THROTTLE,
    level_from_rate, rate_from_level,
)
from dime_gym.core.state import FIRST_WORKER, N_NODES

MAX_COMMAND_CHARS = 4096
ERROR_KINDS = (
    "empty", "unknown_verb", "node_out_of_range", "rate_out_of_range",
    "missing_argument", "multiple_commands", "too_long", "bad_number",
)
COMMAND_FORMS = (  # one per action kind, in ACTION_KINDS order
    "no_op",
    "kubectl delete pod node-<i>",
    "kubectl reroute traffic --from=node-<a> --to=node-<b>",
    "kubectl scale deployment frontend --replicas=1",
    "kubectl throttle ingress --rate=<0.00-1.00>",
    "kubectl logs node-<i>",
)

NO_OP_WORDS = frozenset({"no_op", "no-op", "noop", "observe"})
_STARTERS = NO_OP_WORDS | {"kubectl", "aws"}
_POD_TYPES = frozenset({"pod", "pods", "po"})
_DEPLOY_TYPES = frozenset({"deployment", "deployments", "deploy"})
# Regexes are matched per token (or once per command), with no nested quantifiers: linear time.
_SEPARATOR_RE = re.compile(r"&&|\|\||[;&|]")
_FLAG_RE = re.compile(r"--?([a-z][a-z0-9-]*)(?:=(.*))?\Z", re.S)
_NODE_RE = re.compile(r"(?:(?:pods?|po|deployments?|deploy)/)?node[-_]?(-?[0-9]+)\Z")
_NUMBER_RE = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(%?)\Z")
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_FIELDS = (("kind", len(ACTION_KINDS)), ("node", N_NODES), ("dest", N_NODES), ("rate_level", RATE_LEVELS))
_USED_FIELDS = {NO_OP: (), RESTART: (1,), REROUTE: (1, 2), SCALE_UP: (), THROTTLE: (3,), QUERY_LOGS: (1,)}

Action = tuple[int, int, int, int]


class CommandParseError(ValueError):
    """A command string that is not exactly one valid command.

    Attributes:
        kind: Error class, one of ``ERROR_KINDS``.
        command: The offending text, truncated to 200 characters.
    """

    def __init__(self, kind: str, message: str, command: str = ""):
        super().__init__(message)
        self.kind = kind
        self.command = command[:200]

    def __reduce__(self):  # pickles (e.g. to AsyncVectorEnv workers) with all three fields
        return type(self), (self.kind, str(self), self.command)

    def __eq__(self, other: object) -> bool:  # value semantics, so parse results compare equal
        if not isinstance(other, CommandParseError):
            return NotImplemented
        return (self.kind, str(self), self.command) == (other.kind, str(other), other.command)

    def __hash__(self) -> int:
        return hash((self.kind, str(self), self.command))


@dataclass(frozen=True)
class ParsedCommand:
    """Result of :func:`parse_command`.

    Attributes:
        action: Canonical ``(kind, node, dest, rate_level)``.
        command: Canonical command text, ``format_action(action)``.
        notes: Tolerances used while parsing, e.g. ``("bare_node_index",)``.
    """

    action: Action
    command: str
    notes: tuple[str, ...] = ()


def canonical_action(action: Sequence[int]) -> Action:
    """Range-check an action and zero the fields its kind does not use.

    Raises:
        ValueError: Not four fields, or a field outside its ``MultiDiscrete`` range.
    """
    values = tuple(int(operator.index(v)) for v in action)
    if len(values) != len(_FIELDS):
        raise ValueError(f"action must have 4 fields [kind, node, dest, rate_level], got {len(values)}")
    for (name, size), value in zip(_FIELDS, values):
        if not 0 <= value < size:
            raise ValueError(f"action field {name}={value} out of range 0-{size - 1}")
    used = _USED_FIELDS[values[0]]
    return tuple(v if i == 0 or i in used else 0 for i, v in enumerate(values))  # type: ignore[return-value]


@functools.cache
def canonical_actions() -> tuple[Action, ...]:
    """Every distinct canonical action, sorted: no_op, 8 restarts, 64 reroutes (invalid pairs
    included), scale_up, 21 throttle levels and 8 log queries (103 in all)."""
    nodes = range(N_NODES)
    return tuple(sorted({
        (NO_OP, 0, 0, 0), (SCALE_UP, 0, 0, 0),
        *((RESTART, i, 0, 0) for i in nodes), *((QUERY_LOGS, i, 0, 0) for i in nodes),
        *((REROUTE, a, b, 0) for a in nodes for b in nodes), *((THROTTLE, 0, 0, level) for level in range(RATE_LEVELS)),
    }))


def format_action(action: Sequence[int]) -> str:
    """Canonical command text of an action (exact inverse of :func:`parse_command`)."""
    kind, node, dest, level = canonical_action(action)
    if kind == RESTART:
        return f"kubectl delete pod node-{node}"
    if kind == REROUTE:
        return f"kubectl reroute traffic --from=node-{node} --to=node-{dest}"
    if kind == SCALE_UP:
        return "kubectl scale deployment frontend --replicas=1"
    if kind == THROTTLE:
        return f"kubectl throttle ingress --rate={rate_from_level(level):.2f}"
    if kind == QUERY_LOGS:
        return f"kubectl logs node-{node}"
    return "no_op"


def parse_command(text: str) -> ParsedCommand:
    """Parse ONE command string into its canonical action.

    Raises:
        TypeError: ``text`` is not a ``str``.
        CommandParseError: Anything but exactly one valid command; ``.kind`` says why.
    """
    if not isinstance(text, str):
        raise TypeError(f"command must be a str, got {type(text).__name__}")
    return _Parser(text).parse()


def _short(token: str, limit: int = 40) -> str:
    return token if len(token) <= limit else token[: limit - 3] + "..."


def _to_int(digits: str) -> int:
    """``int`` of a signed digit string, saturated to +-10**9 (no huge-int conversion)."""
    return int(digits) if len(digits) <= 9 else (-(10**9) if digits[0] == "-" else 10**9)


def _example(kind: int, node: int = 3, dest: int | None = None, level: int = 8) -> str:
    """A valid command of ``kind`` for error messages (reroute defaults to a worker dest != node)."""
    if dest is None:
        dest = FIRST_WORKER if node != FIRST_WORKER else FIRST_WORKER + 1
    return format_action((kind, node, dest, level))


class _Parser:
    """State of one parse: the raw text and the notes collected so far."""

    def __init__(self, raw: str):
        self.raw = raw
        self.notes: list[str] = []

    def fail(self, kind: str, problem: str, example: str | None = None) -> NoReturn:
        """Raise ``CommandParseError`` naming the problem and a valid form (all forms if none)."""
        hint = f"e.g. {example}" if example else "valid forms: " + ", ".join(COMMAND_FORMS)
        shown = _short(self.raw.strip(), 80)
        where = f" in {shown!r}" if shown else ""
        raise CommandParseError(kind, f"{problem}{where}; {hint}", self.raw)

    def parse(self) -> ParsedCommand:
        if len(self.raw) > MAX_COMMAND_CHARS:
            self.fail("too_long", f"command is {len(self.raw)} characters, over the {MAX_COMMAND_CHARS} limit")
        text = self.raw.strip().rstrip(";. \t\r\n").strip().lower()
        if not text:
            self.fail("empty", "empty command")
        found = _SEPARATOR_RE.search(text)
        if found:
            self.fail("multiple_commands", f"several commands joined by {found.group()!r}")
        for line in text.splitlines()[1:]:
            words = line.split()
            if words and words[0] in _STARTERS:
                self.fail("multiple_commands", "several commands on separate lines")
        tokens = text.split()
        if sum(t in ("kubectl", "aws") for t in tokens) > 1:
            self.fail("multiple_commands", "several commands given")
        head = tokens[0]
        if head in NO_OP_WORDS and len(tokens) == 1:
            action = (NO_OP, 0, 0, 0)
        elif head == "kubectl":
            action = self.kubectl(tokens)
        elif head == "aws":
            action = self.aws(tokens)
        else:
            self.fail("unknown_verb", f"unrecognised command {_short(' '.join(tokens[:2]))!r}")
        action = canonical_action(action)
        return ParsedCommand(action, format_action(action), tuple(dict.fromkeys(self.notes)))

    def args(self, tokens, example, values=(), ignored_values=(), ignored_bools=()):
        """Split tokens into positionals and ``{flag: value}`` of the flags named in ``values``."""
        takes_value = {*values, *ignored_values, "n", "namespace"}
        positionals, flags, i = [], {}, 0
        while i < len(tokens):
            token, i = tokens[i], i + 1
            match = _FLAG_RE.match(token)
            if match is None:
                positionals.append(token)
                continue
            name, value = match.groups()
            if name not in takes_value and name not in ignored_bools:
                self.fail("unknown_verb", f"unknown flag {_short(token)!r}", example)
            if value is None and name in takes_value:
                if i == len(tokens):
                    self.fail("missing_argument", f"flag --{name} needs a value", example)
                value, i = tokens[i], i + 1
            if name in values:
                if not value:
                    self.fail("missing_argument", f"flag --{name} needs a value", example)
                if name in flags:
                    self.fail("multiple_commands", f"flag --{name} given more than once", example)
                flags[name] = value
        return positionals, flags

    def node(self, token: str, example_for: Callable[[int], str]) -> int:
        """Index of a node reference; ``example_for(i)`` is the valid form shown on error."""
        match = _NODE_RE.match(token)
        if match:
            digits = match.group(1)
        elif _INT_RE.match(token):
            digits = token
            self.notes.append("bare_node_index")
        else:
            self.fail("missing_argument", f"expected a node reference node-<i>, got {_short(token)!r}", example_for(3))
        index = _to_int(digits)
        if not 0 <= index < N_NODES:
            nearest = min(max(index, 0), N_NODES - 1)
            self.fail("node_out_of_range", f"node index {_short(digits)} out of range 0-{N_NODES - 1}", example_for(nearest))
        return index

    def target(self, positionals, example_for, types=None) -> int:
        """Node of ``[<resource>] <node>`` positionals (any resource when ``types`` is None)."""
        if len(positionals) == 2:
            if types is not None and positionals[0] not in types:
                self.fail("unknown_verb", f"unexpected resource {_short(positionals[0])!r}", example_for(3))
            positionals = positionals[1:]
        if not positionals:
            self.fail("missing_argument", "missing node reference node-<i>", example_for(3))
        if len(positionals) > 1:
            self.fail("multiple_commands", f"expected one node, got {len(positionals)} arguments", example_for(3))
        return self.node(positionals[0], example_for)

    def rate(self, token: str) -> int:
        """Rate level of a throttle rate ``0.40`` or ``40%``."""
        match = _NUMBER_RE.match(token)
        if match is None:
            self.fail("bad_number", f"rate {_short(token)!r} is not a number", _example(THROTTLE))
        value = float(match.group(1) + match.group(2))
        if match.group(3):
            value /= 100.0
            self.notes.append("percent_rate")
        if not 0.0 <= value <= 1.0:
            nearest = RATE_LEVELS - 1 if value > 1.0 else 0
            self.fail("rate_out_of_range", f"rate {_short(token)} out of range 0-1", _example(THROTTLE, level=nearest))
        level = level_from_rate(value)
        if abs(value * (RATE_LEVELS - 1) - level) > 1e-6:
            self.notes.append("rate_rounded")
        return level

    def route(self, flags) -> Action:
        """Reroute action of ``--from``/``--to`` flag values."""
        for name in ("from", "to"):
            if name not in flags:
                self.fail("missing_argument", f"missing --{name}=node-<i>", _example(REROUTE, 2))
        src = self.node(flags["from"], lambda i: _example(REROUTE, i))
        return (REROUTE, src, self.node(flags["to"], lambda i: _example(REROUTE, src, i)), 0)

    def kubectl(self, tokens) -> Action:
        verbs = {
            "delete": self.delete, "rollout": self.rollout, "reroute": self.reroute, "exec": self.istio,
            "scale": self.scale, "throttle": self.throttle, "annotate": lambda rest: self.throttle(rest, True),
            "logs": self.logs, "get": self.read_only, "top": self.read_only,
        }
        verb = verbs.get(tokens[1]) if len(tokens) > 1 else None
        if verb is None:
            self.fail("unknown_verb", f"unknown verb {_short(' '.join(tokens[:2]))!r}")
        return verb(tokens[2:])

    def delete(self, rest) -> Action:
        positionals, _ = self.args(rest, _example(RESTART), ignored_values=("grace-period",),
                                   ignored_bools=("force", "now", "wait"))
        return (RESTART, self.target(positionals, lambda i: _example(RESTART, i), _POD_TYPES), 0, 0)

    def rollout(self, rest) -> Action:
        if not rest or rest[0] != "restart":
            self.fail("unknown_verb", "only 'kubectl rollout restart' is supported", _example(RESTART))
        positionals, _ = self.args(rest[1:], _example(RESTART))
        return (RESTART, self.target(positionals, lambda i: _example(RESTART, i)), 0, 0)

    def reroute(self, rest) -> Action:
        positionals, flags = self.args(rest, _example(REROUTE, 2), values=("from", "to"))
        if positionals != ["traffic"]:
            self.fail("unknown_verb", "expected 'kubectl reroute traffic'", _example(REROUTE, 2))
        return self.route(flags)

    def istio(self, rest) -> Action:
        example = _example(REROUTE, 2)
        shift = next((i for i in range(len(rest) - 1) if rest[i : i + 2] == ["traffic", "shift"]), None)
        if shift is None or not any("istio" in t or "envoy" in t for t in rest[:shift]):
            self.fail("unknown_verb", "kubectl exec is only accepted as an istio/envoy 'traffic shift'", example)
        positionals, flags = self.args(rest[shift + 2 :], example, values=("from", "to"))
        if positionals:
            self.fail("unknown_verb", f"unexpected argument {_short(positionals[0])!r}", example)
        self.notes.append("istio_form")
        return self.route(flags)

    def scale(self, rest) -> Action:
        example = _example(SCALE_UP)
        positionals, flags = self.args(rest, example, values=("replicas",))
        if len(positionals) == 1 and "/" in positionals[0]:
            positionals = positionals[0].split("/", 1)
        if not positionals or positionals[0] not in _DEPLOY_TYPES or len(positionals) > 2:
            self.fail("unknown_verb", "expected 'kubectl scale deployment <name>'", example)
        if len(positionals) < 2 or not _NAME_RE.match(positionals[1]):
            self.fail("missing_argument", "missing or invalid deployment name", example)
        return self.scale_by(flags, "replicas")

    def aws(self, tokens) -> Action:
        if tokens[1:3] != ["autoscaling", "set-desired-capacity"]:
            self.fail("unknown_verb", f"unknown verb {_short(' '.join(tokens[:3]))!r}")
        positionals, flags = self.args(tokens[3:], _example(SCALE_UP), values=("auto-scaling-group-name", "desired-capacity"),
                                       ignored_bools=("honor-cooldown", "no-honor-cooldown"))
        if positionals:
            self.fail("unknown_verb", f"unexpected argument {_short(positionals[0])!r}", _example(SCALE_UP))
        if "auto-scaling-group-name" not in flags:
            self.fail("missing_argument", "missing --auto-scaling-group-name", _example(SCALE_UP))
        self.notes.append("aws_form")
        return self.scale_by(flags, "desired-capacity")

    def scale_by(self, flags, name: str) -> Action:
        """Scale-up action; the replica count must be a positive integer but only one is added."""
        if name not in flags:
            self.fail("missing_argument", f"missing --{name}=<n>", _example(SCALE_UP))
        count = _to_int(flags[name]) if _INT_RE.match(flags[name]) else -1
        if count < 1:
            self.fail("bad_number", f"replica count {_short(flags[name])!r} is not a positive integer", _example(SCALE_UP))
        if count != 1:
            self.notes.append("replicas_ignored")
        return (SCALE_UP, 0, 0, 0)

    def throttle(self, rest, annotate: bool = False) -> Action:
        example = _example(THROTTLE)
        positionals, flags = self.args(rest, example, values=("rate",), ignored_bools=("overwrite",) if annotate else ())
        if not positionals:
            self.fail("missing_argument", "missing 'ingress'", example)
        if positionals[0] != "ingress" and not positionals[0].startswith("ingress/"):
            self.fail("unknown_verb", f"only ingress can be throttled, got {_short(positionals[0])!r}", example)
        if len(positionals) > 2 and not annotate:
            self.fail("unknown_verb", f"unexpected argument {_short(positionals[2])!r}", example)
        if "rate" not in flags:
            self.fail("missing_argument", "missing --rate=<0.00-1.00>", example)
        if annotate:
            self.notes.append("annotate_form")
        return (THROTTLE, 0, 0, self.rate(flags["rate"]))

    def logs(self, rest) -> Action:
        positionals, _ = self.args(rest, _example(QUERY_LOGS), ignored_values=("tail", "since", "c", "container"),
                                   ignored_bools=("f", "follow", "p", "previous", "timestamps"))
        return (QUERY_LOGS, self.target(positionals, lambda i: _example(QUERY_LOGS, i), _POD_TYPES), 0, 0)

    def read_only(self, rest) -> Action:
        self.notes.append("read_only_command")
        return (NO_OP, 0, 0, 0)
