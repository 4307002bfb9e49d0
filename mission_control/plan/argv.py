"""Command lines written in a plan (tools, commands, checks) resolved to argv lists.

A command may be written as one line of text or as a list of arguments. Text
is split as a shell would split it, but it runs without a shell, so shell
syntax in it (``&&``, ``|``, ``>``) is a mistake the loader names instead of
an argument the program receives; ``shell: true`` keeps the line whole. A
tool's argv may hold ``{placeholders}``, checked here by name.
"""

from __future__ import annotations

import shlex
import string

from ..agents import ADAPTER_NAMES
from .model import (
    BUDGET_PLACEHOLDERS,
    CONTINUE_PLACEHOLDERS,
    TOOL_PLACEHOLDERS,
    PromptVia,
    ToolSpec,
)
from .problems import Problems, close, short
from .schema import RawTool
from .shapes import check_env_keys
from .tools import BUILTIN_TOOLS
from .yaml_nodes import KeyPath

PLACEHOLDERS: frozenset[str] = frozenset({*TOOL_PLACEHOLDERS, "command"})
"""Names a tool's argv may hold in braces."""
CONTINUE_ALLOWED: frozenset[str] = frozenset({*CONTINUE_PLACEHOLDERS, "command"})

_SHELL_OPERATORS = frozenset({"&&", "||", "|", ";", ">", ">>", "<", "&", "2>&1"})


def to_argv(
    problems: Problems, value: str | list[str], shell: bool, path: KeyPath, what: str
) -> list[str] | None:
    """A command as an argv list: text is split like a shell would, unless ``shell``."""
    if isinstance(value, str):
        if not value.strip():
            problems.add(path, f"{what} is empty", "write the command to run")
            return None
        if shell:
            return [value]
        return _split(problems, value, path)
    if not value:
        problems.add(path, f"{what} is an empty list", "write the command to run")
        return None
    if shell and len(value) != 1:
        problems.add(
            path,
            f"with shell: true, {what} must be one command line, not {len(value)} items",
            "write it as one line of text, or drop `shell: true`",
        )
        return None
    return list(value)


def _split(problems: Problems, value: str, path: KeyPath) -> list[str] | None:
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        problems.add(
            path,
            f"cannot split {short(value)!r} into arguments ({exc})",
            "close the quote, or write it as a list of arguments",
        )
        return None
    try:
        operators = [t for t in shlex.split(value, posix=False) if t in _SHELL_OPERATORS]
    except ValueError:  # pragma: no cover - posix split succeeded above
        operators = []
    if operators:
        problems.add(
            path,
            f"{short(value)!r} uses shell syntax ({operators[0]}) but runs without a shell",
            "add `shell: true`, or split it into separate commands",
        )
        return None
    return argv


def resolve_tools(
    problems: Problems, raw_tools: dict[str, RawTool]
) -> tuple[dict[str, ToolSpec], set[str]]:
    """The built-in tools with the plan's own (which may replace them), and the broken names."""
    tools = dict(BUILTIN_TOOLS)
    broken: set[str] = set()
    for name, raw in raw_tools.items():
        spec = _tool_spec(problems, raw, ("tools", name))
        if spec is None:
            broken.add(name)
        else:
            tools[name] = spec
    return tools, broken


def _placeholders(item: str) -> list[str]:
    """The ``{names}`` in one argv item; raises ``ValueError`` on unbalanced braces."""
    return [name for _, name, _, _ in string.Formatter().parse(item) if name is not None]


def _tool_spec(problems: Problems, raw: RawTool, path: KeyPath) -> ToolSpec | None:
    shell = bool(raw.shell)
    argv = to_argv(problems, raw.argv, shell, (*path, "argv"), "argv")
    if argv is None:
        return None
    names = _placeholders_of(problems, argv, raw.argv, (*path, "argv"), PLACEHOLDERS)
    ok = names is not None
    via = PromptVia(raw.prompt_via) if raw.prompt_via else PromptVia.FILE
    needed = {PromptVia.FILE: "prompt_file", PromptVia.ARG: "prompt"}.get(via)
    if names is not None and needed and needed not in names and "command" not in names:
        problems.add(
            (*path, "prompt_via") if raw.prompt_via else (*path, "argv"),
            f"prompt_via is {via.value} but argv never uses {{{needed}}}",
            f"add '{{{needed}}}' where the tool expects the prompt, or set prompt_via: stdin",
        )
        ok = False
    check_env_keys(problems, raw.env, path)
    events = raw.events or "text"
    if events not in ADAPTER_NAMES:
        suggestion = close(events, ADAPTER_NAMES)
        problems.add(
            (*path, "events"),
            f"unknown events adapter {events!r}",
            (f"did you mean {suggestion!r}? " if suggestion else "")
            + f"known: {', '.join(ADAPTER_NAMES)}",
        )
        ok = False
    extra: dict[str, list[str]] = {}
    for name, value, allowed in (
        ("continue_argv", raw.continue_argv, CONTINUE_ALLOWED),
        ("budget_argv", raw.budget_argv, frozenset(BUDGET_PLACEHOLDERS)),
    ):
        if value is None:
            continue
        items = to_argv(problems, value, shell, (*path, name), name)
        if (
            items is None
            or _placeholders_of(problems, items, value, (*path, name), allowed) is None
        ):
            ok = False
        else:
            extra[name] = items
    if not ok:
        return None
    return ToolSpec(
        argv=argv,
        prompt_via=via,
        env=raw.env,
        shell=shell,
        install_hint=raw.install_hint or "",
        events=events,
        live_input=bool(raw.live_input),
        **extra,
    )


def _placeholders_of(
    problems: Problems,
    argv: list[str],
    written: str | list[str],
    path: KeyPath,
    allowed: frozenset[str],
) -> set[str] | None:
    """The placeholders ``argv`` uses; None (each reported) when one is unknown or broken."""
    ok = True
    names: set[str] = set()
    for i, item in enumerate(argv):
        item_path = (*path, i) if isinstance(written, list) else path
        try:
            found = _placeholders(item)
        except ValueError:
            problems.add(
                item_path,
                f"unbalanced brace in {short(item)!r}",
                "placeholders look like {prompt_file}; write {{ or }} for a literal brace",
            )
            ok = False
            continue
        for placeholder in found:
            if placeholder not in allowed:
                suggestion = close(placeholder, allowed)
                hint = f"did you mean {{{suggestion}}}?" if suggestion else ""
                known = ", ".join("{" + p + "}" for p in sorted(allowed))
                problems.add(
                    item_path,
                    f"unknown placeholder {{{placeholder}}}",
                    (hint + " " if hint else "") + f"known: {known}",
                )
                ok = False
            names.add(placeholder)
    return names if ok else None
