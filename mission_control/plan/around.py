"""Settings around the agent: untracked files, where a branch starts, ports, notifications.

They are checked here, apart from the rest of ``resolve``, because each reads a
small language of its own: gitignore-style patterns that must stay inside the
repository, ``from: pr:123`` or ``origin/feature-x``, a port range, and the
``notify:`` mapping (also read from the user's config file, so it is built by
one function for both).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .ids import id_problem
from .model import DEFAULT_PORT_RANGE, NotifySpec, ToolSpec
from .problems import Problems, short
from .schema import RawNotify
from .shapes import WorkstreamDraft
from .yaml_nodes import KeyPath

PR_PREFIX = "pr:"
PORT = "{port}"
_PR_NUMBER = re.compile(r"[1-9][0-9]{0,9}")


def pattern_problem(pattern: str) -> str | None:
    """Why a ``copy:``/``link:`` pattern cannot be used, or ``None``."""
    body = pattern.removeprefix("!")
    if not body.strip():
        return "is empty"
    if body.startswith("~") or re.match(r"[A-Za-z]:[\\/]", body):
        return "names a place outside the repository"
    if any(part == ".." for part in re.split(r"[\\/]", body)):
        return "leaves the repository ('..')"
    if "\0" in body:
        return "contains a NUL character"
    if any(part == ".git" for part in body.strip("/").split("/")):
        return "reaches into the repository's .git"
    return None


def start_from_problem(value: str) -> str | None:
    """Why ``from:`` cannot be used, or ``None``: ``pr:NUMBER`` or ``REMOTE/BRANCH``."""
    if value.startswith(PR_PREFIX):
        number = value[len(PR_PREFIX) :]
        return None if _PR_NUMBER.fullmatch(number) else "has no pull request number after 'pr:'"
    remote, slash, branch = value.partition("/")
    if not slash or not remote or not branch:
        return "is neither pr:NUMBER nor REMOTE/BRANCH"
    for part in (remote, *branch.split("/")):
        reason = id_problem(part)
        if reason is not None and not reason.startswith("is longer"):
            return f"has a part {part!r} that {reason}"
    return None


def resolve_around(problems: Problems, draft: WorkstreamDraft, tool: ToolSpec | None) -> None:
    """Check ``copy:``, ``link:``, ``from:`` and ``ports:`` of one workstream; set its fields."""
    _check_port_use(problems, draft, tool)
    for name in ("copy_files", "link_files"):
        found = draft.settings.get(name)
        if found is None:
            continue
        patterns, path = found
        for index, pattern in enumerate(patterns):
            reason = pattern_problem(pattern)
            if reason is not None:
                draft.fail(
                    problems,
                    (*path, index),
                    f"pattern {short(pattern)!r} {reason}",
                    "patterns name untracked files of the repository's checkout, relative to its"
                    " top folder, e.g. .env, '.env.*', node_modules",
                )
        draft.kwargs[name] = list(patterns)
    found = draft.settings.get("start_from")
    if found is not None:
        value, path = found
        reason = start_from_problem(value)
        if reason is not None:
            draft.fail(
                problems,
                path,
                f"{short(value)!r} {reason}",
                "write `from: pr:123` (a pull request, through gh) or"
                " `from: origin/feature-x` (a remote branch)",
            )
        else:
            draft.kwargs["start_from"] = value


def _check_port_use(problems: Problems, draft: WorkstreamDraft, tool: ToolSpec | None) -> None:
    """``ports: 0`` with ``{port}`` written somewhere would fail at run time: say so now."""
    found = draft.settings.get("ports")
    if found is None or found[0] != 0:
        return
    kw = draft.kwargs
    commands = [c.argv for name in ("setup", "teardown", "checks") for c in kw.get(name, [])]
    commands += [tool.argv] if tool is not None else []
    commands += [kw["command"]] if kw.get("command") else []
    if any(PORT in item for argv in commands for item in argv):
        draft.fail(
            problems,
            found[1],
            "`ports: 0` gives no port, but the workstream's commands use {port}",
            "remove `ports: 0`, or the {port} placeholder",
        )


def resolve_port_range(problems: Problems, written: list[int] | None) -> tuple[int, int]:
    """``port_range: [LOW, HIGH]``; the default when left out or wrong (reported)."""
    if written is None:
        return DEFAULT_PORT_RANGE
    low, high = written
    if low > high:
        problems.add(
            ("port_range",),
            f"port_range [{low}, {high}] starts above its end",
            "write the lowest port first: [20000, 29999]",
        )
        return DEFAULT_PORT_RANGE
    return (low, high)


def notify_spec(raw: RawNotify) -> NotifySpec:
    """A ``notify:`` mapping (of a plan or of the user's config file) as the model."""
    kwargs: dict[str, Any] = {"urls": list(raw.urls)}
    if raw.on is not None:
        kwargs["on"] = frozenset(raw.on)
    if raw.bell is not None:
        kwargs["bell"] = raw.bell
    if raw.command is not None:
        command = raw.command
        kwargs["command"] = shlex.split(command) if isinstance(command, str) else list(command)
    return NotifySpec(**kwargs)


def check_notify(problems: Problems, raw: RawNotify, path: KeyPath) -> None:
    """What the schema cannot see in ``notify:``: an empty command, a URL with no scheme."""
    for index, url in enumerate(raw.urls):
        if "://" not in url:
            problems.add(
                (*path, "urls", index),
                "a notification channel is a URL with a scheme",
                "e.g. ntfy://mytopic, json://127.0.0.1:8080/hook (see apprise's list of services)",
            )
    if raw.command is not None and not (
        raw.command.strip() if isinstance(raw.command, str) else raw.command
    ):
        problems.add(
            (*path, "command"),
            "the notification command is empty",
            "write the command that reads the event on stdin, e.g. [notify-send-json]",
        )
