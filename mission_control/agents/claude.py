"""``claude-stream-json``: Claude Code's ``-p --output-format stream-json --verbose`` stream.

Events (one JSON object per line): ``system`` (``init`` carries ``session_id``, ``model``,
``cwd``), ``assistant`` (a message with ``text`` / ``tool_use`` / ``thinking`` blocks and its
``usage``), ``user`` (``tool_result`` blocks), ``result`` (the end: ``subtype``, ``is_error``,
``result`` text, ``total_cost_usd``, cumulative ``usage``, ``permission_denials``).

Why the shape:

- Claude Code may send one ``assistant`` event per content block, each repeating the same
  message id and usage: usage is kept per message id and summed, so nothing counts twice;
  ``result`` then gives the authoritative totals and the cost.
- Claude's ``input_tokens`` leave out cache reads and writes; ours include them (see
  :class:`~.events.AgentUsage`), so input = input + cache_creation + cache_read, cached =
  cache_read.
- A tool call is reported when it is made (``Write src/x.py``); its result adds a line only
  when it tells something: a shell command's outcome, or a tool's error.
- Paths under the session's ``cwd`` are shown relative to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from .adapter import (
    JsonLineAdapter,
    compact_json,
    count_field,
    dict_field,
    first_line,
    list_field,
    money_field,
    text_field,
)
from .events import ActionKind, AgentEvent

_EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
_SEARCH_TOOLS = frozenset({"Glob", "Grep", "LS"})


class ClaudeAdapter(JsonLineAdapter):
    name: ClassVar[str] = "claude-stream-json"
    session_cost: ClassVar[bool] = True  # a resumed session's total_cost_usd counts it all
    command: ClassVar[str] = (
        "claude -p --output-format stream-json --verbose --permission-mode acceptEdits"
    )

    def _setup(self) -> None:
        self._cwd = ""
        self._tools: dict[str, tuple[ActionKind, str]] = {}  # tool_use id -> its action
        self._message_usage: dict[str, tuple[int, int, int]] = {}
        self._summed = (0, 0, 0)  # the sum of _message_usage

    def _event(self, obj: Mapping[str, object]) -> list[AgentEvent] | None:
        kind = text_field(obj, "type")
        if kind == "system":
            return self._system(obj)
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "result":
            return self._result(obj)
        if kind == "stream_event":  # partial chunks (--include-partial-messages): activity only
            return []
        return None

    def _system(self, obj: Mapping[str, object]) -> list[AgentEvent] | None:
        if text_field(obj, "subtype") != "init":
            return None  # hooks, compaction, ...: shown as they came
        self._cwd = (text_field(obj, "cwd") or "").rstrip("/")
        return self._start(text_field(obj, "session_id"), text_field(obj, "model"))

    def _assistant(self, obj: Mapping[str, object]) -> list[AgentEvent]:
        message = dict_field(obj, "message")
        events = self._start(text_field(obj, "session_id"), text_field(message, "model"))
        for block in list_field(message, "content"):
            block_type = text_field(block, "type")
            if block_type == "text":
                events += self._message(text_field(block, "text") or "")
            elif block_type == "tool_use":
                events.append(self._tool_use(block))
            elif block_type == "thinking":
                thought = first_line(text_field(block, "thinking") or "")
                if thought:
                    events.append(self._action("think", thought))
        usage = dict_field(message, "usage")
        if usage:
            events += self._message_tokens(text_field(message, "id"), _tokens(usage))
        return events

    def _message_tokens(
        self, message_id: str | None, tokens: tuple[int, int, int]
    ) -> list[AgentEvent]:
        """Count a message's usage once, however many events repeat it: the latest figure
        for a message id replaces the earlier one in the running sum."""
        key = message_id or f"#{len(self._message_usage)}"
        before = self._message_usage.get(key, (0, 0, 0))
        self._message_usage[key] = tokens
        self._summed = (
            self._summed[0] - before[0] + tokens[0],
            self._summed[1] - before[1] + tokens[1],
            self._summed[2] - before[2] + tokens[2],
        )
        # never below what a result already reported (a resumed stream, odd orders)
        return self._set_usage(*_at_least(self._summed, self._totals))

    def _tool_use(self, block: object) -> AgentEvent:
        name = text_field(block, "name") or "tool"
        kind, text = self._describe(name, dict_field(block, "input"))
        tool_id = text_field(block, "id")
        if tool_id:
            self._tools[tool_id] = (kind, text)
        return self._action(kind, text)

    def _describe(self, name: str, args: Mapping[str, object]) -> tuple[ActionKind, str]:
        path = self._relative(text_field(args, "file_path") or text_field(args, "notebook_path"))
        if name in _EDIT_TOOLS:
            return "edit", f"{name} {path}"
        if name == "Read":
            return "read", f"Read {path}"
        if name == "Bash":
            return "command", f"$ {first_line(text_field(args, 'command') or '')}"
        if name in _SEARCH_TOOLS:
            pattern = text_field(args, "pattern") or self._relative(text_field(args, "path"))
            return "search", f"{name} {pattern}"
        if name in ("WebFetch", "WebSearch"):
            return "web", f"{name} {text_field(args, 'url') or text_field(args, 'query') or ''}"
        if name == "TodoWrite":
            return "plan", f"TodoWrite ({len(list_field(args, 'todos'))} items)"
        if name == "AskUserQuestion":
            questions = list_field(args, "questions")
            asked = text_field(questions[0], "question") if questions else None
            return "ask", f"asks: {asked or compact_json(args)}"
        if name in ("Task", "Agent"):
            return "tool", f"{name} {text_field(args, 'description') or compact_json(args)}"
        return "tool", f"{name} {compact_json(args)}"

    def _relative(self, path: str | None) -> str:
        if not path:
            return ""
        if self._cwd and path.startswith(self._cwd + "/"):
            return path[len(self._cwd) + 1 :]
        return path

    def _user(self, obj: Mapping[str, object]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for block in list_field(dict_field(obj, "message"), "content"):
            if text_field(block, "type") != "tool_result":
                continue
            kind, text = self._tools.get(text_field(block, "tool_use_id") or "", ("tool", "tool"))
            failed = isinstance(block, Mapping) and block.get("is_error") is True
            if kind == "command":
                events.append(self._action(kind, f"{text} → {'failed' if failed else 'ok'}"))
            elif failed:
                reason = first_line(_result_text(block), 160)
                events.append(self._action(kind, f"{text} → failed: {reason}"))
        return events

    def _result(self, obj: Mapping[str, object]) -> list[AgentEvent]:
        events = self._start(text_field(obj, "session_id"), None)
        usage = dict_field(obj, "usage")
        totals = _tokens(usage) if usage else self._totals
        # The result's usage covers the run; should a version report less (the last turn
        # only), the sum of the messages already seen is kept.
        events += self._set_usage(
            *_at_least(totals, self._totals), cost=money_field(obj, "total_cost_usd")
        )
        for denial in list_field(obj, "permission_denials"):
            name = text_field(denial, "tool_name") or "tool"
            self._deny(self._describe(name, dict_field(denial, "tool_input"))[1])
        events += self._note_final(text_field(obj, "result"))
        subtype = text_field(obj, "subtype") or ""
        failed = obj.get("is_error") is True or subtype not in ("", "success")
        if failed:
            detail = subtype or first_line(text_field(obj, "result") or "") or "error"
            events.append(self._error(f"claude: {detail}"))
        return events + self._finish(not failed, subtype if failed else "")


def _tokens(usage: Mapping[str, object]) -> tuple[int, int, int]:
    """(input with cache, output, cached) from a Messages API usage object."""
    read = count_field(usage, "cache_read_input_tokens")
    written = count_field(usage, "cache_creation_input_tokens")
    fresh = count_field(usage, "input_tokens")
    return fresh + read + written, count_field(usage, "output_tokens"), read


def _at_least(values: Sequence[int], floor: Sequence[int]) -> tuple[int, int, int]:
    first, second, third = (max(a, b) for a, b in zip(values, floor, strict=True))
    return first, second, third


def _result_text(block: object) -> str:
    """The text of a tool_result, whose ``content`` is a string or a list of text blocks."""
    content = block.get("content") if isinstance(block, Mapping) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text_field(part, "text") or "" for part in content)
    return ""
