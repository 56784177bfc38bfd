"""DIME's language-model interface: prompts (``render_messages``), answers (``parse_answer``),
the kubectl grammar (``parse_command`` / ``format_action``) and the ``TextEnv`` wrapper.

Names load on first use, so that the core (the oracle formats kubectl commands) can import
``dime_gym.text.commands`` without pulling in the env."""

from __future__ import annotations

import importlib

_SOURCES = {
    "ParsedAnswer": "answers", "parse_answer": "answers",
    "CommandParseError": "commands", "ParsedCommand": "commands", "format_action": "commands", "parse_command": "commands",
    "TextEnv": "env",
    "SYSTEM_PROMPT": "prompts", "chat_messages": "prompts", "parse_state": "prompts", "render_messages": "prompts",
    "render_user_message": "prompts",
}


def __getattr__(name: str):
    if name in _SOURCES:
        return getattr(importlib.import_module(f"dime_gym.text.{_SOURCES[name]}"), name)
    raise AttributeError(f"module 'dime_gym.text' has no attribute {name!r}")


__all__ = sorted(_SOURCES)
