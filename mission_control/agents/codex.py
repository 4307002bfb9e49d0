"""``codex-json``: the ``codex exec --json`` stream.

Events: ``thread.started`` (``thread_id``: the session to resume), ``turn.started``,
``item.started`` / ``item.updated`` / ``item.completed`` (an ``item`` of type
``agent_message``, ``reasoning``, ``command_execution``, ``file_change``, ``mcp_tool_call``,
``web_search``, ``todo_list``, ``plan``, ``error``, ...), ``turn.completed`` (the turn's
``usage``), ``turn.failed``, ``request_user_input`` and ``error``.

Why the shape:

- Codex reports no model and no cost: the model comes from the plan (the ``model`` hint) and
  the cost, if at all, from a pricing table. Usage is per turn, so turns are summed; OpenAI's
  ``input_tokens`` already include ``cached_input_tokens``, as ours do.
- A command is reported when it starts (``$ pytest -q``) and when it ends, with its exit code
  (``$ pytest -q → exit 1``); codex wraps commands in ``bash -lc '…'``, which is unwrapped.
- A command the user's policy ``declined``, or an error that speaks of approval, is a refused
  permission (needs input when the turn ends); ``request_user_input`` needs input at once.
- An item type this adapter does not know is shown as text.
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
    list_field,
    mentions_approval,
    text_field,
)
from .events import AgentEvent

_SHELL_WRAPPER: Final = re.compile(r"(?:/usr)?(?:/bin/)?(?:ba|z)?sh -l?c ")
_CHANGE_VERBS: Final = {"add": "Add", "delete": "Delete", "update": "Update"}


class CodexAdapter(JsonLineAdapter):
    name: ClassVar[str] = "codex-json"
    command: ClassVar[str] = "codex exec --json --sandbox workspace-write -"

    def _event(self, obj: Mapping[str, object]) -> list[AgentEvent] | None:
        kind = text_field(obj, "type")
        if kind == "thread.started":
            return self._start(text_field(obj, "thread_id"), None)
        if kind == "turn.started" or kind == "item.plan.delta":
            return []
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._item(dict_field(obj, "item"), kind.removeprefix("item."))
        if kind == "turn.completed":
            usage = dict_field(obj, "usage")
            return self._add_usage(
                count_field(usage, "input_tokens"),
                count_field(usage, "output_tokens"),
                count_field(usage, "cached_input_tokens"),
            ) + self._finish(True)
        if kind == "turn.failed":
            message = text_field(dict_field(obj, "error"), "message") or "turn failed"
            return [self._failure(message), *self._finish(False, message)]
        if kind == "error":
            return [self._failure(text_field(obj, "message") or "error")]
        if kind == "request_user_input":
            asked: list[AgentEvent] = []
            for question in list_field(obj, "questions"):
                asked += self._ask(text_field(question, "question") or compact_json(question))
            return asked or self._ask("(a question)")
        return None

    def _failure(self, message: str) -> AgentEvent:
        if mentions_approval(message):
            self._deny(first_line(message))
        return self._error(message)

    def _item(self, item: Mapping[str, object], phase: str) -> list[AgentEvent] | None:
        """Events for an item at ``phase``: ``started``, ``updated`` or ``completed``."""
        item_type = text_field(item, "type")
        done = phase == "completed"
        if item_type == "agent_message":
            return self._message(text_field(item, "text") or "") if done else []
        if item_type in ("reasoning", "plan"):
            text = first_line(text_field(item, "text") or "")
            if not done or not text:
                return []
            return [self._action("think" if item_type == "reasoning" else "plan", text)]
        if item_type == "command_execution":
            return self._command(item, phase)
        if item_type == "file_change":
            return self._file_change(item) if done else []
        if item_type == "mcp_tool_call":
            return self._mcp(item, phase)
        if item_type == "web_search":
            return (
                [self._action("web", f"search {text_field(item, 'query') or ''}")] if done else []
            )
        if item_type == "todo_list":
            todos = list_field(item, "items")
            finished = sum(
                1 for todo in todos if isinstance(todo, Mapping) and todo.get("completed") is True
            )
            return [self._action("plan", f"todo {finished}/{len(todos)} done")]
        if item_type == "error":
            return [self._failure(text_field(item, "message") or "error")] if done else []
        return None

    def _command(self, item: Mapping[str, object], phase: str) -> list[AgentEvent]:
        text = f"$ {first_line(_unwrap(text_field(item, 'command') or ''))}"
        status = text_field(item, "status")
        if phase != "completed":
            return [self._action("command", text)] if phase == "started" else []
        exit_code = item.get("exit_code")
        if status == "declined":
            self._deny(text)
            return [self._action("command", f"{text} → declined")]
        if isinstance(exit_code, int) and not isinstance(exit_code, bool):
            return [self._action("command", f"{text} → exit {exit_code}")]
        return [self._action("command", f"{text} → {status or 'done'}")]

    def _file_change(self, item: Mapping[str, object]) -> list[AgentEvent]:
        failed = text_field(item, "status") == "failed"
        events: list[AgentEvent] = []
        for change in list_field(item, "changes"):
            verb = _CHANGE_VERBS.get(text_field(change, "kind") or "", "Change")
            text = f"{verb} {text_field(change, 'path') or '?'}"
            events.append(self._action("edit", f"{text} → failed" if failed else text))
        return events

    def _mcp(self, item: Mapping[str, object], phase: str) -> list[AgentEvent]:
        text = f"{text_field(item, 'server') or '?'}.{text_field(item, 'tool') or '?'}"
        if phase != "completed":
            return [self._action("tool", text)] if phase == "started" else []
        error = text_field(dict_field(item, "error"), "message")
        if error:
            return [self._action("tool", f"{text} → failed: {first_line(error, 160)}")]
        return []


def _unwrap(command: str) -> str:
    """``/bin/bash -lc 'pytest -q'`` -> ``pytest -q``: the shell wrapper says nothing.

    One level of quotes is undone by hand (shlex is slow on a long heredoc, and only the
    first line is shown anyway)."""
    wrapper = _SHELL_WRAPPER.match(command)
    if not wrapper:
        return command
    inner = command[wrapper.end() :]
    if len(inner) < 2 or inner[0] != inner[-1] or inner[0] not in "'\"":
        return inner
    if inner[0] == "'":
        return inner[1:-1].replace("'\\''", "'")
    return inner[1:-1].replace('\\"', '"').replace("\\\\", "\\")
