"""Turn a tool spec and a workstream into the exact argv, stdin and environment of an attempt.

The prompt never goes through a shell: it is written to ``prompt.txt`` in the
attempt's folder and reaches the tool as a file path, on stdin, or as one argv
item. Placeholders are replaced inside argv items, which are passed to
``exec`` as they are; only a tool or command marked ``shell: true`` is one
line for ``/bin/sh -c``, and then every substituted value is shell-quoted.
Rendering is pure apart from writing the prompt file; finding the executable
on PATH is separate (:func:`resolve_executable`) so a missing tool is reported
before a worktree is made.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..agents.relay import relay_argv
from ..errors import MissionControlError, ToolNotFoundError
from ..plan.model import (
    CONTINUE_PLACEHOLDERS,
    TOOL_PLACEHOLDERS,
    Price,
    PromptVia,
    ToolSpec,
    Workstream,
)
from ..store.logs import inbox_path, report_path, stream_path
from ..store.private import write_private_text
from .ports import port_env

PLACEHOLDERS = TOOL_PLACEHOLDERS

COMMAND_ITEM = "{command}"
"""An argv item that is exactly this is replaced by the workstream's own ``command``."""

SHELL = "/bin/sh"

_PLACEHOLDER = re.compile(r"\{(" + "|".join(CONTINUE_PLACEHOLDERS) + r")\}")


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A message that continues the agent's conversation, with the session to go on with."""

    message: str
    session_id: str | None = None
    session_cost: float = 0.0
    """What the session had cost so far (a CLI may report the whole session's cost)."""


@dataclass(frozen=True, slots=True)
class RenderedCommand:
    """What to run for one attempt."""

    argv: tuple[str, ...]
    stdin_path: Path | None
    """The prompt file when the tool reads its prompt on stdin; else None (/dev/null)."""
    env: dict[str, str]
    """Variables to add to the inherited environment: the plan's, then ``MC_*``."""
    prompt_file: Path | None
    """``prompt.txt`` in the attempt folder, if the workstream has a prompt."""
    continues: bool = False
    """It goes on with the agent's earlier conversation (``continue_argv``)."""

    @property
    def env_names(self) -> tuple[str, ...]:
        return tuple(self.env)


def render_command(
    tool: ToolSpec,
    ws: Workstream,
    *,
    run_id: str,
    attempt: int,
    attempt_dir: Path,
    worktree: Path,
    ports: Sequence[int] = (),
    follow_up: FollowUp | None = None,
    pricing: Mapping[str, Price] | None = None,
    spent_before: tuple[int, float] = (0, 0.0),
) -> RenderedCommand:
    """The argv, stdin and env for attempt ``attempt`` of ``ws`` run with ``tool``.

    Writes the prompt (inline text or a copy of ``prompt_file``) to
    ``attempt_dir/prompt.txt``. Raises MissionControlError when the tool needs
    a prompt or a command the workstream does not have. ``follow_up`` continues the
    agent's conversation when the tool can (else its message is added to the prompt).
    A tool with an adapter runs under the relay (``agents.relay``).
    """
    prompt_text = read_prompt(ws)
    continues = follow_up is not None and can_continue(tool, follow_up.session_id)
    if follow_up is not None:
        if continues:
            prompt_text = follow_up.message
        else:
            prompt_text = f"{prompt_text or ''}\n\n{follow_up.message}".strip("\n")
    prompt_file: Path | None = None
    if prompt_text is not None:
        prompt_file = attempt_dir / "prompt.txt"
        write_private_text(prompt_file, prompt_text)  # a prompt is not for other users
    values = {
        "prompt_file": str(prompt_file) if prompt_file is not None else None,
        "prompt": prompt_text,
        "worktree": str(worktree),
        "workstream_id": ws.id,
        "phase_id": ws.phase_id,
        "task_id": ws.task_id,
        "run_id": run_id,
        "attempt": str(attempt),
        "port": str(ports[0]) if ports else None,
        "session_id": follow_up.session_id if follow_up is not None else None,
    }
    argv = _render_argv(tool, ws, values, continues=continues)
    if prompt_text is not None and not _runs_shell(tool, ws) and not _mentions_prompt(tool, ws):
        # The spec says how the prompt travels; with no placeholder for it, append it.
        if tool.prompt_via is PromptVia.FILE:
            argv.append(str(prompt_file))
        elif tool.prompt_via is PromptVia.ARG:
            argv.append(prompt_text)
    stdin_path = prompt_file if tool.prompt_via is PromptVia.STDIN else None
    budget = ws.budget
    if budget.max_cost_usd is not None and tool.budget_argv:
        cap = f"{budget.max_cost_usd:.6f}".rstrip("0").rstrip(".") or "0"
        argv += [item.replace("{max_cost_usd}", cap) for item in tool.budget_argv]
    if tool.events != "text":
        log_path = attempt_dir / f"attempt-{attempt}.log"
        argv = relay_argv(
            sys.executable,
            argv,
            events=tool.events,
            stream=stream_path(log_path),
            report=report_path(log_path),
            inbox=inbox_path(log_path) if tool.live_input else None,
            live_input=tool.live_input and stdin_path is not None,
            max_cost_usd=budget.max_cost_usd,
            max_tokens=budget.max_tokens,
            pricing=Price.table(pricing),
            spent_before=spent_before,
            session_cost_before=follow_up.session_cost if follow_up and continues else 0.0,
        )
    env = {k: _substitute(v, values, ws, quote=False) for k, v in tool.env.items()}
    env.update({k: _substitute(v, values, ws, quote=False) for k, v in ws.env.items()})
    env.update(
        {
            "MC_RUN_ID": run_id,
            "MC_PHASE": ws.phase_id,
            "MC_WORKSTREAM": ws.id,
            "MC_WORKTREE": str(worktree),
            "MC_ATTEMPT": str(attempt),
            **port_env(ports),
        }
    )
    return RenderedCommand(tuple(argv), stdin_path, env, prompt_file, continues)


def can_continue(tool: ToolSpec, session_id: str | None) -> bool:
    """The tool can go on with the agent's conversation: it has a ``continue_argv``, and
    the session it names is known."""
    if tool.continue_argv is None:
        return False
    return session_id is not None or not any("{session_id}" in a for a in tool.continue_argv)


def resolve_executable(ws: Workstream, tool: ToolSpec) -> str:
    """The path of the program that ``ws`` starts with ``tool``; ToolNotFoundError if missing.

    Uses the PATH the attempt will see (the plan's ``env`` may set it).
    Blocking (stat calls): call from a worker thread.
    """
    argv0 = _program(ws, tool)
    env = {**os.environ, **tool.env, **ws.env}
    what = f"tool '{ws.tool}'"
    if not tool.shell and tool.argv[0] == COMMAND_ITEM:
        what += f": command '{argv0}' of {ws.task_id}"
    return find_executable(
        argv0, what, tool.install_hint, path=env.get("PATH"), cwd=ws.worktree_path
    )


def find_executable(
    argv0: str,
    what: str,
    install_hint: str = "",
    *,
    path: str | None = None,
    cwd: Path | None = None,
) -> str:
    """Find ``argv0`` like ``exec`` would; raise ToolNotFoundError naming ``what`` and the fix.

    ``what`` names the thing for the message, e.g. ``tool 'aider'``. A relative
    path with a slash is looked up in ``cwd`` and accepted as it is while
    ``cwd`` does not exist yet (the worktree is made later).
    """
    install = f"install it ({install_hint})" if install_hint else "install it"
    if "/" in argv0:
        candidate = Path(argv0)
        if not candidate.is_absolute():
            if cwd is None or not cwd.exists():
                return argv0
            candidate = cwd / candidate
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise ToolNotFoundError(
            f"{what} not found: {candidate} is not an executable file: {install} or change the plan"
        )
    found = shutil.which(argv0, path=path)
    if found is None:
        raise ToolNotFoundError(f"{what} not found on PATH: {install} or change the plan")
    return found


# ---------------------------------------------------------------------- internals


def read_prompt(ws: Workstream) -> str | None:
    """The workstream's prompt: its file's text or the inline one (blocking: a file read)."""
    if ws.prompt_file is not None:
        try:
            return ws.prompt_file.read_text(encoding="utf-8")
        except OSError as err:
            raise MissionControlError(
                f"{ws.task_id}: cannot read prompt file {ws.prompt_file}: {err.strerror}: "
                "create it or fix prompt_file in the plan"
            ) from None
    return ws.prompt


def _render_argv(
    tool: ToolSpec, ws: Workstream, values: Mapping[str, str | None], *, continues: bool
) -> list[str]:
    template = tool.continue_argv if continues and tool.continue_argv else tool.argv
    if tool.shell:
        return [SHELL, "-c", _substitute(" ".join(template), values, ws, quote=True)]
    argv: list[str] = []
    for item in template:
        if item == COMMAND_ITEM:
            argv.extend(_render_command_item(ws, values))
        else:
            argv.append(_substitute(item, values, ws, quote=False))
    return argv


def _render_command_item(ws: Workstream, values: Mapping[str, str | None]) -> list[str]:
    if not ws.command:
        raise MissionControlError(
            f"{ws.task_id}: tool '{ws.tool}' runs the workstream's command, but it has none: "
            "add `command:` to the workstream"
        )
    if ws.shell:
        return [SHELL, "-c", _substitute(" ".join(ws.command), values, ws, quote=True)]
    return [_substitute(item, values, ws, quote=False) for item in ws.command]


def _substitute(text: str, values: Mapping[str, str | None], ws: Workstream, *, quote: bool) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values[name]
        if value is None and name == "port":
            raise MissionControlError(
                f"{ws.task_id}: tool '{ws.tool}' uses {{port}}, but the workstream has no port:"
                " remove `ports: 0` from the plan"
            )
        if value is None:
            raise MissionControlError(
                f"{ws.task_id}: tool '{ws.tool}' needs a prompt ({{{name}}}), but the "
                "workstream has none: set prompt or prompt_file"
            )
        return shlex.quote(value) if quote else value

    return _PLACEHOLDER.sub(one, text)


def _runs_shell(tool: ToolSpec, ws: Workstream) -> bool:
    return tool.shell or (COMMAND_ITEM in tool.argv and ws.shell)


def _mentions_prompt(tool: ToolSpec, ws: Workstream) -> bool:
    items = list(tool.argv)
    if COMMAND_ITEM in items and ws.command:
        items += ws.command
    return any("{prompt_file}" in i or "{prompt}" in i for i in items)


def _program(ws: Workstream, tool: ToolSpec) -> str:
    """The argv[0] the attempt will exec (before placeholders that need a prompt)."""
    if tool.shell:
        return SHELL
    first = tool.argv[0]
    if first == COMMAND_ITEM:
        if not ws.command:
            raise MissionControlError(
                f"{ws.task_id}: tool '{ws.tool}' runs the workstream's command, but it has none: "
                "add `command:` to the workstream"
            )
        if ws.shell:
            return SHELL
        first = ws.command[0]
    return first.replace("{worktree}", str(ws.worktree_path))
