"""Read a language model's answer: strip ``<think>``, take ``<reasoning>`` and the command in
``<action>{"command": "kubectl ..."}</action>``, and parse it to an action.

Models rarely answer in exactly the requested shape, so common deviations are tolerated, and
each one used is reported by name in ``ParsedAnswer.rescues`` (``RESCUES``), so a format
reward can tell a clean answer from a rescued one. What cannot be read raises nothing: it is
reported as ``ParsedAnswer.error``, a :class:`CommandParseError` whose ``kind`` is one of
``ANSWER_ERROR_KINDS`` or of the command grammar's ``ERROR_KINDS``.

Only tag positions, JSON and whole lines are looked at, never a word in prose: a sentence
that mentions "observe" or "kubectl" does not become a command. Work is linear in the
answer's length, and a command is only ever parsed, never executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dime_gym.commands import NO_OP_WORDS, CommandParseError, parse_command

MAX_ANSWER_CHARS = 200_000
MAX_COMMAND_LINES = 8  # more command lines than this is not one answer (and bounds the work)
RESCUES = (
    "missing_reasoning",  # no closed <reasoning>...</reasoning> block
    "missing_action_tag",  # no <action> block: the command was found elsewhere in the text
    "unclosed_action",  # <action> without </action>
    "code_fence",  # the command or JSON sat in a ``` fence
    "single_quotes",  # JSON written with single quotes
    "alternate_key",  # the JSON key was not "command" (e.g. "cmd", "raw_command", "action")
    "bare_command",  # a plain command instead of {"command": ...}
    "extra_text",  # text outside the reasoning/action scaffold or around the JSON
)
ANSWER_ERROR_KINDS = ("not_text", "too_long", "unclosed_think", "no_command", "bad_json", "multiple_commands")
_ALTERNATE_KEYS = ("raw_command", "cmd", "action", "kubectl")
_LINE_MARKERS = "$>-*` \t"  # shell prompts, list bullets and inline-code ticks before a command


@dataclass(frozen=True)
class ParsedAnswer:
    """What was read from one answer.

    Attributes:
        action: Canonical ``(kind, node, dest, rate_level)``, or ``None`` if unusable.
        command: Canonical command text of ``action`` (``None`` if unusable).
        raw_command: The command text as found in the answer (``None`` if none was found).
        reasoning: Text of the ``<reasoning>`` block, if any.
        thinking: Text of the ``<think>`` block, if any.
        rescues: Tolerances used, from ``RESCUES``, in the order they applied.
        notes: The command grammar's tolerances (e.g. ``bare_node_index``).
        error: Why no action could be read, or ``None``.
    """

    action: tuple[int, int, int, int] | None
    command: str | None
    raw_command: str | None
    reasoning: str | None
    thinking: str | None
    rescues: tuple[str, ...]
    notes: tuple[str, ...]
    error: CommandParseError | None

    @property
    def ok(self) -> bool:
        """An action was read."""
        return self.error is None

    @property
    def clean(self) -> bool:
        """An action was read from exactly the requested format, with no tolerance used."""
        return self.error is None and not self.rescues and not self.notes


def _fail(kind: str, message: str, text: str = "") -> CommandParseError:
    return CommandParseError(kind, message, text)


def _shown(text: str, limit: int = 60) -> str:
    """``repr`` of ``text`` cut to about ``limit`` characters: error messages quote the answer
    only this much (they are echoed into the next prompt)."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _block(text: str, open_tag: str, close_tag: str) -> tuple[int, int, int] | None:
    """``(start, content_end, end)`` of the first ``open_tag ... close_tag`` block (content_end
    = end = len(text) if it never closes), or ``None`` if ``open_tag`` does not occur."""
    start = text.find(open_tag)
    if start < 0:
        return None
    close = text.find(close_tag, start + len(open_tag))
    if close < 0:
        return start, len(text), len(text)
    return start, close, close + len(close_tag)


def _strip_think(text: str) -> tuple[str, str | None]:
    """The answer without its ``<think>`` block, and the thinking text. A lone ``</think>``
    (the chat template opened the block in the prompt) ends the thinking; a ``<think>`` that
    never closes means the model never got to answer."""
    close = text.find("</think>")
    start = text.find("<think>")
    if start >= 0 and (close < 0 or close < start):
        raise _fail("unclosed_think", "the <think> block never closes (the answer was probably cut off at the token "
                    "limit); close it with </think> and answer after it", text)
    if close < 0:
        return text, None
    thinking_start = start + len("<think>") if start >= 0 else 0
    return text[: max(start, 0)] + text[close + len("</think>") :], text[thinking_start:close].strip()


def _unfence(text: str, rescues: list[str]) -> str:
    """The inside of the first ``` fence in ``text`` (its language tag dropped), else ``text``."""
    start = text.find("```")
    if start < 0:
        return text
    end = text.find("```", start + 3)
    inner = text[start + 3 : end if end >= 0 else len(text)]
    first_line, newline, rest = inner.partition("\n")
    if newline and first_line.strip().isalnum():  # ```json / ```bash
        inner = rest
    rescues.append("code_fence")
    if text[:start].strip() or (end >= 0 and text[end + 3 :].strip()):
        rescues.append("extra_text")
    return inner


def _command_from_json(text: str, rescues: list[str]) -> str:
    """The command string of the JSON object in ``text`` (first ``{`` to last ``}``)."""
    start, end = text.find("{"), text.rfind("}")
    if end < start:
        raise _fail("bad_json", 'the JSON object is not closed; write {"command": "kubectl ..."}', text)
    if text[:start].strip() or text[end + 1 :].strip():
        rescues.append("extra_text")
    candidate = text[start : end + 1]
    try:
        value = json.loads(candidate)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        try:
            value = json.loads(candidate.replace("'", '"'))
        except (ValueError, RecursionError):
            raise _fail("bad_json", 'the action is not valid JSON; write {"command": "kubectl ..."}', text) from None
        rescues.append("single_quotes")
    if not isinstance(value, dict):
        raise _fail("bad_json", f'the action JSON is a {type(value).__name__}, not an object like {{"command": "kubectl ..."}}', text)
    if isinstance(value.get("command"), str):
        return value["command"]
    for key in _ALTERNATE_KEYS:
        if isinstance(value.get(key), str):
            rescues.append("alternate_key")
            return value[key]
    keys = ", ".join(_shown(str(k), 30) for k in sorted(map(str, value))[:5]) + (", ..." if len(value) > 5 else "")
    raise _fail("no_command", f'the action JSON has no "command" string (keys: [{keys}]); '
                'write {"command": "kubectl ..."}', text)


def _command_lines(text: str) -> list[str]:
    """Lines (or inline code spans) that are a command: they start with ``kubectl`` or ``aws``,
    or consist of a no-op word alone. A sentence that merely mentions one is not a command."""
    found = []
    for line in text.splitlines():
        pieces = line.split("`")[1::2] if line.count("`") >= 2 else [line]
        for piece in pieces:
            candidate = piece.strip().lstrip(_LINE_MARKERS).strip().rstrip(".;`")
            head = candidate.split(None, 1)[0].lower() if candidate else ""
            if head in ("kubectl", "aws") or (candidate.lower() in NO_OP_WORDS):
                found.append(candidate)
    return found


def _inline_commands(text: str) -> list[str]:
    """Commands written inside a sentence ("... then kubectl delete pod node-1"): the rest of
    each line from a ``kubectl`` word on. Used only when no line is a command by itself."""
    found = []
    for line in text.splitlines():
        at = line.lower().find("kubectl ")
        if at > 0 and not line[at - 1].isalnum():
            found.append(line[at:].strip().rstrip(".;`"))
    return found


def _command_from_lines(text: str, rescues: list[str]) -> str:
    """The one command line in ``text``; several that disagree are an error."""
    lines = _command_lines(text) or _inline_commands(text)
    if not lines:
        raise _fail("no_command", 'no command found; answer with <action>{"command": "kubectl ..."}</action>', text)
    if len(lines) > MAX_COMMAND_LINES:
        raise _fail("multiple_commands", f"the answer holds {len(lines)} command lines; give exactly one", text)
    valid: dict[tuple, str] = {}  # action -> first line giving it; lines that do not parse are prose
    for line in lines:
        try:
            valid.setdefault(parse_command(line).action, line)
        except CommandParseError:
            pass
    if len(valid) > 1:
        first, second = list(valid.values())[:2]
        raise _fail("multiple_commands", f"the answer holds {len(valid)} different commands ({_shown(first)}, "
                    f"{_shown(second)}, ...); give exactly one", text)
    command = next(iter(valid.values())) if valid else lines[0]  # none valid: report the first's grammar error
    rescues.append("bare_command")
    if text.strip() != command:
        rescues.append("extra_text")
    return command


def _extract_command(body: str, reasoning: tuple[int, int, int] | None, rescues: list[str]) -> str:
    """The command text of an answer with its think block already removed (``reasoning``: its
    ``<reasoning>`` block, from :func:`_block`)."""
    if reasoning is None:
        rest = body
    elif reasoning[2] > reasoning[1]:  # closed: drop the whole block
        rest = body[: reasoning[0]] + body[reasoning[2] :]
    else:  # never closed: it runs up to the <action> tag, if there is one
        action_at = body.find("<action>", reasoning[0])
        rest = body[: reasoning[0]] + (body[action_at:] if action_at >= 0 else body[reasoning[0] + len("<reasoning>") :])
    if rest.count("<action>") > 1:  # (counted after the reasoning, which may quote the format)
        raise _fail("multiple_commands", f"the answer has {rest.count('<action>')} <action> blocks; give exactly one", body)
    action = _block(rest, "<action>", "</action>")
    if action is None:
        rescues.append("missing_action_tag")
        content = rest
    else:
        content = rest[action[0] + len("<action>") : action[1]]
        if action[1] == action[2]:
            rescues.append("unclosed_action")
        if rest[: action[0]].strip() or rest[action[2] :].strip():
            rescues.append("extra_text")
    content = _unfence(content, rescues)
    if "{" in content:
        json_rescues: list[str] = []
        try:
            command = _command_from_json(content, json_rescues)
            rescues.extend(json_rescues)
            return command
        except CommandParseError:
            if action is not None or not _command_lines(content):
                raise
    if action is not None and len(content.strip().splitlines()) == 1:
        rescues.append("bare_command")
        line = content.strip()
        cleaned = _command_lines(line)  # drops a `$ ` prompt or inline-code ticks
        return cleaned[0] if len(cleaned) == 1 else line
    return _command_from_lines(content, rescues)


def parse_answer(text: str) -> ParsedAnswer:
    """Read one answer; never raises for any ``str`` (see the module docstring)."""
    rescues: list[str] = []
    thinking = reasoning = raw = None
    try:
        if not isinstance(text, str):
            raise _fail("not_text", f"the answer must be a str, got {type(text).__name__}")
        if len(text) > MAX_ANSWER_CHARS:
            raise _fail("too_long", f"the answer is {len(text)} characters, over the {MAX_ANSWER_CHARS} limit", text[:200])
        body, thinking = _strip_think(text)
        block = _block(body, "<reasoning>", "</reasoning>")
        if block is not None and block[2] > block[1]:
            reasoning = body[block[0] + len("<reasoning>") : block[1]].strip()
        if not reasoning:
            rescues.append("missing_reasoning")
        raw = _extract_command(body, block, rescues)
        parsed = parse_command(raw)
    except CommandParseError as error:
        return ParsedAnswer(None, None, raw, reasoning, thinking, tuple(dict.fromkeys(rescues)), (), error)
    return ParsedAnswer(parsed.action, parsed.command, raw, reasoning, thinking, tuple(dict.fromkeys(rescues)), parsed.notes, None)


__all__ = ["ANSWER_ERROR_KINDS", "MAX_ANSWER_CHARS", "RESCUES", "ParsedAnswer", "parse_answer"]
