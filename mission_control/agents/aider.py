"""``aider-text``: aider's plain output (it has no JSON mode).

Aider prints its progress as it goes; the lines worth structure are:

- ``Main model: openai/gpt-4o with whole edit format`` (older: ``Model: …``): the model;
- ``Tokens: 1.2k sent, 340 received. Cost: $0.01 message, $0.02 session.`` after each
  reply (with ``, 1.1k cache write, 500 cache hit`` when the provider caches; no ``Cost:``
  part when aider knows no price; ``request`` in older versions): the tokens of that reply
  (summed) and the session's cost so far (aider's own running total, kept as is);
- ``Applied edit to src/x.py``: an edit; ``Commit 1a2b3c4 feat: …``: aider's own commit.

Everything else is shown as text, as it came. The reply itself is not marked in any way, so
the final message is taken to be the plain lines printed since the last structured line
before the last ``Tokens:`` line; that is enough to see whether the reply ended in a question.
Aider has no session id (``--restore-chat-history`` resumes a folder's chat).
"""

from __future__ import annotations

import re
from typing import ClassVar, Final

from .adapter import LineAdapter
from .events import AgentEvent, AgentText

_MODEL: Final = re.compile(r"^(?:Main model|Model): (\S+)")
_TOKENS: Final = re.compile(r"(\d[\d,]*(?:\.\d+)?)([kKmM]?) (sent|cache write|cache hit|received)")
_SESSION_COST: Final = re.compile(r"\$(\d[\d,]*(?:\.\d+)?) session")
_APPLIED: Final = re.compile(r"^Applied edit to (.+)$")
_COMMIT: Final = re.compile(r"^Commit ([0-9a-f]{7,40}) (.*)$")
_CHATTER: Final = re.compile(
    r"^(?:Aider v\d|Git repo:|Repo-map:|Weak model:|Editor model:|Added .* to the chat|"
    r"Use /help|https://aider\.chat/)"
)
_SCALE: Final = {"": 1, "k": 1_000, "m": 1_000_000}
_MAX_REPLY_LINES: Final = 200
_MAX_REPORT_CHARS: Final = 500  # a real report is ~100 chars; longer is not one (and slow)


class AiderAdapter(LineAdapter):
    name: ClassVar[str] = "aider-text"
    command: ClassVar[str] = "aider --yes-always --no-pretty --message-file PROMPT"

    def _setup(self) -> None:
        self._reply: list[str] = []  # plain lines since the last structured line

    def _line(self, text: str) -> list[AgentEvent]:
        line = text.strip()
        if line.startswith("Tokens: ") and len(line) <= _MAX_REPORT_CHARS:
            events = self._tokens(line)
            if events is not None:
                return events
        if model := _MODEL.match(line):
            self._reply.clear()
            return self._start(None, model.group(1))
        if applied := _APPLIED.match(line):
            self._reply.clear()
            return [self._action("edit", f"Edit {applied.group(1)}")]
        if commit := _COMMIT.match(line):
            self._reply.clear()
            return [self._action("commit", f"Commit {commit.group(1)} {commit.group(2)}")]
        if line and not _CHATTER.match(line):
            self._reply = [*self._reply[-_MAX_REPLY_LINES + 1 :], line]
        return [AgentText(text)]

    def _tokens(self, line: str) -> list[AgentEvent] | None:
        counts = {label: _count(value, scale) for value, scale, label in _TOKENS.findall(line)}
        if "sent" not in counts and "received" not in counts:
            return None
        if self._reply:
            self._remember_final("\n".join(self._reply))
            self._reply.clear()
        cost = _SESSION_COST.search(line)
        input_tokens, output_tokens, cached = self._totals
        return self._set_usage(
            input_tokens + counts.get("sent", 0),
            output_tokens + counts.get("received", 0),
            cached + counts.get("cache hit", 0),
            cost=float(cost.group(1).replace(",", "")) if cost else None,
        )


def _count(value: str, scale: str) -> int:
    """``1.2k`` -> 1200, ``1,234`` -> 1234."""
    return round(float(value.replace(",", "")) * _SCALE[scale.lower()])
