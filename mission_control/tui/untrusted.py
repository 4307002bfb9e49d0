"""Text an agent wrote (logs, diffs, names, messages) made safe to put on the screen.

Rich keeps most control characters it is given and writes them to the terminal
as they are: an ESC that starts no colour code, shift-out, a NUL or a C1 code
in a log line would move the cursor, switch the terminal's character set or
ring it. Everything untrusted reaches a widget through one of these functions:
colour codes become styles (``styled``) or go (``plain``), and every other
control character is dropped. Markup is never parsed from such text.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.markup import escape

_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
"""Control characters other than tab, newline, carriage return and ESC (those four the
ANSI decoder understands), including the C1 range."""
_LEFTOVER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
"""What may remain after decoding: a lone ESC, a stray newline or carriage return."""


def styled(raw: str) -> Text:
    """One line of agent output with its colours as styles and no control codes."""
    text = Text.from_ansi(_CONTROLS.sub("", raw), end="", no_wrap=True)
    if _LEFTOVER.search(text.plain):
        # a broken escape sequence: keep the words, drop the colours
        text = Text(_LEFTOVER.sub("", text.plain), end="", no_wrap=True)
    text.expand_tabs()
    return text


def plain(raw: str) -> str:
    """Agent text for a one-line cell or title: no colours, no control codes, tabs as spaces."""
    if not raw:
        return ""
    if "\x1b" in raw:
        raw = Text.from_ansi(_CONTROLS.sub("", raw)).plain
    return _LEFTOVER.sub("", raw.replace("\t", "  ").replace("\n", " "))


def markup_escape(raw: str) -> str:
    """Agent text to place inside Textual markup: cleaned, and its brackets escaped."""
    return escape(plain(raw))
