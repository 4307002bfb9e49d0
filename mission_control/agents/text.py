"""``text``: any command's output, line by line.

For a tool with no structured mode (a script, a test command, an agent CLI run in its text
mode), each line is activity and shown as it came. Its last non-empty line stands for the
final message, so a tool whose last line is a question (``Which environment?``) is seen as
needing input when the stream ends; a prompt with its answers after the question mark
(``Continue? [y/N]``) is not, by the same simple rule as every adapter.
"""

from __future__ import annotations

from typing import ClassVar

from .adapter import LineAdapter
from .events import AgentEvent, AgentText


class TextAdapter(LineAdapter):
    name: ClassVar[str] = "text"
    command: ClassVar[str] = "any command"

    def _line(self, text: str) -> list[AgentEvent]:
        if text.strip():
            self._remember_final(text)
        return [AgentText(text)]
