"""``gemini-stream-json``: the ``gemini --output-format stream-json`` stream.

Events: ``init`` (``session_id``, ``model``), ``message`` (``role`` user or assistant,
``content``, and ``delta: true`` when it is one chunk of a streamed answer), ``tool_use``
(``tool_name``, ``tool_id``, ``parameters``), ``tool_result`` (``tool_id``, ``status``,
``output`` or ``error``), ``error`` (``severity``, ``message``) and ``result`` (``status``,
``error``, ``stats`` with the run's tokens).

Why the shape:

- An assistant answer arrives in delta chunks: they are joined into one message, reported
  when something else happens (or the stream ends), so a log pane shows sentences, not
  fragments. The user's message is our own prompt echoed back: not reported.
- Gemini reports no cost; its ``input_tokens`` include ``cached`` ones, as ours do.
- A tool error or an ``error`` event that speaks of approval is a refused permission.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Final

from .adapter import (
    JsonLineAdapter,
    compact_json,
    count_field,
    dict_field,
    first_line,
    mentions_approval,
    text_field,
)
from .events import ActionKind, AgentEvent

_KINDS: Final = frozenset({"init", "message", "tool_use", "tool_result", "error", "result"})
_EXIT_CODE: Final = re.compile(r"Exit Code: (-?\d+)")
_EDIT_TOOLS: Final = {"write_file": "Write", "replace": "Edit", "edit": "Edit"}
_READ_TOOLS: Final = frozenset({"read_file", "read_many_files"})
_SEARCH_TOOLS: Final = frozenset({"glob", "search_file_content", "grep", "list_directory"})
_WEB_TOOLS: Final = frozenset({"web_fetch", "google_web_search"})


class GeminiAdapter(JsonLineAdapter):
    name: ClassVar[str] = "gemini-stream-json"
    command: ClassVar[str] = (
        "gemini --skip-trust --approval-mode auto_edit --output-format stream-json"
    )

    def _setup(self) -> None:
        self._chunks: list[str] = []  # the assistant answer streaming in
        self._tools: dict[str, tuple[ActionKind, str]] = {}

    def _event(self, obj: Mapping[str, object]) -> list[AgentEvent] | None:
        kind = text_field(obj, "type")
        if kind not in _KINDS:
            return None  # shown as text; a streaming answer goes on across it
        if kind == "message" and text_field(obj, "role") == "assistant":
            return self._chunk(obj)
        events = self._flush()
        if kind == "init":
            return events + self._start(text_field(obj, "session_id"), text_field(obj, "model"))
        if kind == "message":
            return events
        if kind == "tool_use":
            return [*events, self._tool_use(obj)]
        if kind == "tool_result":
            return events + self._tool_result(obj)
        if kind == "error":
            message = text_field(obj, "message") or "error"
            severity = text_field(obj, "severity")
            return [*events, self._failure(f"{severity}: {message}" if severity else message)]
        return events + self._result(obj)

    def _end(self) -> list[AgentEvent]:
        return self._flush()

    def _chunk(self, obj: Mapping[str, object]) -> list[AgentEvent]:
        content = text_field(obj, "content") or ""
        if obj.get("delta") is True:
            self._chunks.append(content)
            return []
        return self._flush() + self._message(content)

    def _flush(self) -> list[AgentEvent]:
        text, self._chunks = "".join(self._chunks), []
        return self._message(text)

    def _failure(self, message: str) -> AgentEvent:
        if mentions_approval(message):
            self._deny(first_line(message))
        return self._error(message)

    def _tool_use(self, obj: Mapping[str, object]) -> AgentEvent:
        name = text_field(obj, "tool_name") or "tool"
        kind, text = _describe(name, dict_field(obj, "parameters"))
        tool_id = text_field(obj, "tool_id")
        if tool_id:
            self._tools[tool_id] = (kind, text)
        return self._action(kind, text)

    def _tool_result(self, obj: Mapping[str, object]) -> list[AgentEvent]:
        kind, text = self._tools.get(text_field(obj, "tool_id") or "", ("tool", "tool"))
        if text_field(obj, "status") == "error":
            message = text_field(dict_field(obj, "error"), "message") or "error"
            if mentions_approval(message):
                self._deny(text)
            return [self._action(kind, f"{text} → failed: {first_line(message, 160)}")]
        if kind != "command":
            return []
        code = _EXIT_CODE.search(text_field(obj, "output") or "")
        return [self._action(kind, f"{text} → exit {code.group(1)}" if code else f"{text} → ok")]

    def _result(self, obj: Mapping[str, object]) -> list[AgentEvent]:
        stats = dict_field(obj, "stats")
        events: list[AgentEvent] = []
        if stats:
            events += self._set_usage(
                count_field(stats, "input_tokens"),
                count_field(stats, "output_tokens"),
                count_field(stats, "cached"),
            )
        if text_field(obj, "status") == "success":
            return events + self._finish(True)
        message = text_field(dict_field(obj, "error"), "message") or "error"
        return [*events, self._failure(message), *self._finish(False, message)]


def _describe(name: str, args: Mapping[str, object]) -> tuple[ActionKind, str]:
    path = text_field(args, "file_path") or text_field(args, "absolute_path") or ""
    if name in _EDIT_TOOLS:
        return "edit", f"{_EDIT_TOOLS[name]} {path}"
    if name in _READ_TOOLS:
        return "read", f"Read {path or compact_json(args)}"
    if name == "run_shell_command":
        return "command", f"$ {first_line(text_field(args, 'command') or '')}"
    if name in _SEARCH_TOOLS:
        pattern = text_field(args, "pattern") or text_field(args, "path") or compact_json(args)
        return "search", f"{name} {pattern}"
    if name in _WEB_TOOLS:
        return "web", f"{name} {text_field(args, 'query') or text_field(args, 'prompt') or ''}"
    if name == "write_todos":
        return "plan", "write_todos"
    return "tool", f"{name} {compact_json(args)}"
