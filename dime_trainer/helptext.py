"""Plain-text help: Sphinx/RST markup (``code``, :class:`~x.Y`) read as text in a terminal."""

from __future__ import annotations

import re

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]+?)(?:\s*<[^>]+>)?`")  # :class:`~a.B` -> B's path, :ref:`t <x>` -> t
_LITERAL = re.compile(r"``([^`]+)``")
_INTERPRETED = re.compile(r"(?<![`\w])`([^`]+)`(?!`)")
_LINK = re.compile(r"`([^`<]+?)\s*<(https?://[^>]+)>`_+")


def plain(text: str | None) -> str | None:
    """``text`` without RST markup: roles, double-backtick literals, single backticks and
    ``Name <url>`_`` links (kept as "Name (url)")."""
    if not text:
        return text
    text = _LINK.sub(r"\1 (\2)", text)
    text = _ROLE.sub(lambda m: m.group(1).split(".")[-1] if m.group(0).count("~") else m.group(1), text)
    text = _LITERAL.sub(r"\1", text)
    return _INTERPRETED.sub(r"\1", text)


def plain_parser(parser) -> None:
    """Strip RST markup from every help string of an ``argparse`` parser (in place)."""
    parser.description = plain(parser.description)
    parser.epilog = plain(parser.epilog)
    for action in parser._actions:  # noqa: SLF001 - argparse exposes no public iterator
        if isinstance(action.help, str):
            action.help = plain(action.help)
