"""One safe, readable line of text per agent event, for log panes and ``logs``.

Everything an agent writes is untrusted: a model can be talked into printing escape sequences
that retitle the terminal, hide text, or move the cursor over earlier lines, and a tool's output
carries colour codes meant for a terminal of its own. So a line from here never holds ESC nor
any other control character but tab:

- ANSI escape sequences (CSI, OSC, DCS, ...) are removed: they carry no readable content;
- a carriage return keeps what a terminal would show (the text after the last one);
- other C0 controls and DEL become their visible symbols (``␇``), C1 controls ``\\x9b``;
- bidirectional overrides and line separators, which reorder or break a line where a reader
  cannot see it, and lone surrogates (valid in JSON, unwritable as UTF-8) become ``<U+202E>``;
- a message's line breaks become `` ↵ `` so that one event is one line;
- a very long line is cut with a note of how much was cut.
"""

from __future__ import annotations

import re
from typing import Final

from .events import (
    AgentAction,
    AgentError,
    AgentEvent,
    AgentFinished,
    AgentMessage,
    AgentNeedsInput,
    AgentStarted,
    AgentText,
    AgentUsage,
)

MAX_CHARS: Final = 4000
"""Longest rendered line, in characters; the rest is summarised as ``… (N more chars)``."""

_ACTION_MARKS: Final = {"ask": "?", "think": "… thinking:"}

_ANSI: Final = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]?             # CSI: colours, cursor moves
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?    # OSC: window title, hyperlinks
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?         # DCS, SOS, PM, APC strings
    | \x1b[ -/]*[0-~]                       # any other escape sequence
    | \x9b[0-?]*[ -/]*[@-~]?                # 8-bit CSI
    """,
    re.VERBOSE,
)
_INVISIBLE: Final = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␀ .. ␟
    if code == 0x7F:
        return "␡"
    if code <= 0x9F:
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def safe_line(text: str, *, max_chars: int = MAX_CHARS) -> str:
    """``text`` as one line a terminal shows as written: see the module docstring."""
    text = _ANSI.sub("", text)
    text = "\n".join(_overwrite(part) for part in text.split("\n"))
    text = text.strip("\n").replace("\n", " ↵ ")
    text = _INVISIBLE.sub(_visible, text)
    if len(text) > max_chars:
        text = f"{text[:max_chars]} … ({len(text) - max_chars} more chars)"
    return text


def _overwrite(line: str) -> str:
    """What a terminal leaves of a line with carriage returns: the last non-empty part."""
    if "\r" not in line:
        return line
    parts = [part for part in line.split("\r") if part]
    return parts[-1] if parts else ""


def render(event: AgentEvent) -> str:
    """One safe line for ``event``."""
    return safe_line(_describe(event))


def _describe(event: AgentEvent) -> str:
    match event:
        case AgentText(line=line):
            return line
        case AgentAction(kind=kind, text=text):
            return f"{_ACTION_MARKS.get(kind, '▸')} {text}"
        case AgentMessage(text=text, final=final):
            return f"{'» final:' if final else '»'} {text.strip()}"
        case AgentUsage():
            return _usage(event)
        case AgentStarted(session_id=session_id, model=model):
            parts = [f"session {session_id}"] if session_id else []
            if model:
                parts.append(f"model {model}")
            return "● " + (" · ".join(parts) or "started")
        case AgentNeedsInput(reason=reason):
            return f"⚠ needs input: {reason}"
        case AgentError(message=message):
            return f"✗ {message}"
        case AgentFinished(ok=ok, detail=detail):
            if ok:
                return "■ finished"
            return f"■ finished with an error: {detail}" if detail else "■ finished with an error"


def _usage(event: AgentUsage) -> str:
    tokens = f"tokens: {event.input_tokens:,} in"
    if event.cached_tokens:
        tokens += f" ({event.cached_tokens:,} cached)"
    tokens += f", {event.output_tokens:,} out"
    if event.cost_usd is None:
        return tokens
    return f"{tokens} · ${event.cost_usd:.4f}"
