"""DIME's language-model interface: prompts (``render_messages``), answers (``parse_answer``)
and the ``TextEnv`` wrapper. The kubectl grammar is DIME's action language and lives below the
environments, in ``dime_gym.commands``; its public names are re-exported here."""

from __future__ import annotations

from dime_gym.commands import CommandParseError, ParsedCommand, format_action, parse_command
from dime_gym.text.answers import ParsedAnswer, parse_answer
from dime_gym.text.env import TextEnv
from dime_gym.text.prompts import (
    SYSTEM_PROMPT,
    chat_messages,
    parse_state,
    render_messages,
    render_user_message,
    step_report,
)

__all__ = [
    "CommandParseError",
    "ParsedAnswer",
    "ParsedCommand",
    "SYSTEM_PROMPT",
    "TextEnv",
    "chat_messages",
    "format_action",
    "parse_answer",
    "parse_command",
    "parse_state",
    "render_messages",
    "render_user_message",
    "step_report",
]
