"""``opencode-json``: the ``opencode run --format json`` stream.

Events, each with a ``sessionID`` (``ses_…``) and a ``part``: ``step_start``, ``text`` (a
finished text part), ``reasoning``, ``tool_use`` (a finished tool call: ``part.tool`` and
``part.state`` with ``status``, ``input``, ``output``, ``error``, ``metadata.exit``),
``step_finish`` (``part.reason``, ``part.tokens``, ``part.cost``) and ``error``
(``error.name``, ``error.data.message``).

Why the shape:

- The session id rides on every event; the first one starts the session. Opencode names no
  model in this stream: the model comes from the plan (the ``model`` hint).
- Tokens and cost come per step and are summed. Opencode's ``tokens.input`` leaves out cache
  reads and writes; ours include them. Its cost is 0 when the model has no price in its
  config, so 0 means "not reported" and the pricing table may step in.
- A tool call arrives finished, so one action says both what and how it went.
- The run is over at a ``step_finish`` whose reason is not ``tool-calls`` (more steps follow
  a tool call). Without ``--dangerously-skip-permissions`` opencode rejects what needs a
  permission: a tool error that says a permission was rejected is a refused permission.
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
    money_field,
    text_field,
)
from .events import ActionKind, AgentEvent

_DENIED: Final = re.compile(r"permission.*(?:reject|denied)|(?:reject|denied).*permission", re.I)
_MAX_ERROR_CHARS: Final = 2000  # enough to judge; bounds the regex's work on huge errors
_EDIT_TOOLS: Final = {"write": "Write", "edit": "Edit", "patch": "Patch", "multiedit": "Edit"}
_SEARCH_TOOLS: Final = frozenset({"glob", "grep", "list", "codesearch"})
_WEB_TOOLS: Final = frozenset({"webfetch", "websearch"})


class OpencodeAdapter(JsonLineAdapter):
    name: ClassVar[str] = "opencode-json"
    command: ClassVar[str] = "opencode run --format json"

    def _setup(self) -> None:
        self._cost_sum = 0.0

    def _event(self, obj: Mapping[str, object]) -> list[AgentEvent] | None:
        kind = text_field(obj, "type")
        if kind not in ("step_start", "text", "reasoning", "tool_use", "step_finish", "error"):
            return None
        events = self._start(text_field(obj, "sessionID"), None)
        part = dict_field(obj, "part")
        if kind == "text":
            events += self._message(text_field(part, "text") or "")
        elif kind == "reasoning":
            thought = first_line(text_field(part, "text") or "")
            if thought:
                events.append(self._action("think", thought))
        elif kind == "tool_use":
            events.append(self._tool(part))
        elif kind == "step_finish":
            events += self._step_finish(part)
        elif kind == "error":
            error = dict_field(obj, "error")
            message = text_field(dict_field(error, "data"), "message")
            events.append(self._error(message or text_field(error, "name") or "error"))
        return events

    def _tool(self, part: Mapping[str, object]) -> AgentEvent:
        state = dict_field(part, "state")
        kind, text = _describe(text_field(part, "tool") or "tool", dict_field(state, "input"))
        if text_field(state, "status") == "error":
            error = text_field(state, "error") or "error"
            if _DENIED.search(error[:_MAX_ERROR_CHARS]):
                self._deny(text)
            return self._action(kind, f"{text} → failed: {first_line(error, 160)}")
        exit_code = dict_field(state, "metadata").get("exit")
        if kind == "command" and isinstance(exit_code, int) and not isinstance(exit_code, bool):
            return self._action(kind, f"{text} → exit {exit_code}")
        return self._action(kind, text)

    def _step_finish(self, part: Mapping[str, object]) -> list[AgentEvent]:
        tokens = dict_field(part, "tokens")
        cache = dict_field(tokens, "cache")
        read = count_field(cache, "read")
        fresh = count_field(tokens, "input") + read + count_field(cache, "write")
        self._cost_sum += money_field(part, "cost") or 0.0
        input_tokens, output_tokens, cached = self._totals
        events = self._set_usage(
            input_tokens + fresh,
            output_tokens + count_field(tokens, "output"),
            cached + read,
            cost=self._cost_sum or None,
        )
        reason = text_field(part, "reason")
        if reason == "tool-calls" or reason is None:
            return events
        return events + self._finish(reason == "stop", "" if reason == "stop" else reason)


def _describe(tool: str, args: Mapping[str, object]) -> tuple[ActionKind, str]:
    path = text_field(args, "filePath") or text_field(args, "path") or ""
    if tool in _EDIT_TOOLS:
        return "edit", f"{_EDIT_TOOLS[tool]} {path}"
    if tool == "read":
        return "read", f"Read {path}"
    if tool == "bash":
        return "command", f"$ {first_line(text_field(args, 'command') or '')}"
    if tool in _SEARCH_TOOLS:
        return "search", f"{tool} {text_field(args, 'pattern') or path or compact_json(args)}"
    if tool in _WEB_TOOLS:
        return "web", f"{tool} {text_field(args, 'url') or text_field(args, 'query') or ''}"
    if tool in ("todowrite", "todoread"):
        return "plan", tool
    return "tool", f"{tool} {compact_json(args)}"
