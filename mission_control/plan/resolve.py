"""The third pass: each workstream's merged settings resolved to ``Workstream`` fields.

Tools are looked up, the prompt and the command chosen, paths expanded
(``$VARS``, ``~``, relative to the plan's folder), checks turned into argv
lists and resources into bytes. Nothing here looks at the disk or at git
(``environment`` does), so the same plan resolves the same way anywhere.
A merged setting this pass has no rule for goes to the model as it is:
pydantic turns ``base: deps`` into ``BaseMode.DEPS``, ``pr:`` into
``PrOptions``. Work done once per distinct value (a path, a check list shared
through ``defaults:``) is cached, so a plan of thousands of workstreams that
share their defaults costs little more than one.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .argv import to_argv
from .merge import REQUIRED
from .model import Budget, Check, Resources, ToolSpec, Workstream
from .paths import PathExpansionError, expand_path
from .problems import Problems, close, describe
from .schema import RawBudget, RawCheck, RawResources
from .shapes import PhaseDraft, Shapes, WorkstreamDraft
from .yaml_nodes import KeyPath

_RULES = frozenset(
    {"repo", "worktree_root", "tool", "checks", "command", "shell", "resources", "budget"}
)
"""Settings resolved by a rule below; every other one is passed to the model as merged."""
_PASSED = frozenset(Workstream.model_fields) - _RULES


class Resolver:
    """Resolves workstreams of one plan; ``folder`` is where relative paths start."""

    def __init__(
        self,
        problems: Problems,
        shapes: Shapes,
        tools: dict[str, ToolSpec],
        broken_tools: set[str],
        folder: Path,
        environ: Mapping[str, str],
    ) -> None:
        self.problems = problems
        self.defaults_broken = shapes.defaults_broken
        self.tools = tools
        self.broken_tools = broken_tools
        self.folder = folder
        self.environ = environ
        self._paths: dict[str, Path | PathExpansionError] = {}
        self._checks: dict[int, list[Check] | None] = {}

    def resolve(self, phase: PhaseDraft, draft: WorkstreamDraft) -> None:
        raw = draft.raw
        kw = draft.kwargs
        kw["id"] = raw.id
        kw["name"] = raw.name if raw.name is not None else raw.id
        kw["phase_id"] = phase.id or ""
        kw["line"] = self.problems.doc.pos(draft.path)[0]
        for name in REQUIRED:
            if name not in draft.settings and name not in draft.broken:
                draft.ok = False
                if name not in self.defaults_broken:
                    self.problems.add(
                        draft.path,
                        f"missing required key '{name}'",
                        f"set `{name}:` on the workstream or under `defaults:`",
                    )
        tool = self._resolve_tool(draft)
        self._resolve_prompt(draft, tool)
        self._resolve_paths(draft)
        self._resolve_settings(draft)

    def _resolve_tool(self, draft: WorkstreamDraft) -> ToolSpec | None:
        found = draft.settings.get("tool")
        if found is None:
            return None
        name, path = found
        draft.kwargs["tool"] = name
        if name in self.broken_tools:
            draft.ok = False
            return None
        spec = self.tools.get(name)
        if spec is None:
            suggestion = close(name, self.tools)
            known = ", ".join(sorted(self.tools))
            hint = (
                f"did you mean '{suggestion}'? " if suggestion else ""
            ) + f"known tools: {known}; or define it under `tools:`"
            draft.fail(self.problems, path, f"unknown tool '{name}'", hint)
        return spec

    def _resolve_prompt(self, draft: WorkstreamDraft, tool: ToolSpec | None) -> None:
        raw = draft.raw
        runs_command = tool is not None and any("{command}" in item for item in tool.argv)
        if raw.prompt is not None and raw.prompt_file is not None:
            draft.fail(
                self.problems,
                (*draft.path, "prompt_file"),
                "both `prompt` and `prompt_file` are set",
                "keep one: inline text in `prompt:`, or a file in `prompt_file:`",
                at=self.problems.doc.key_pos((*draft.path, "prompt_file")),
            )
        elif raw.prompt is not None:
            if not raw.prompt.strip():
                draft.fail(
                    self.problems,
                    (*draft.path, "prompt"),
                    "the prompt is empty",
                    "write what the tool should do",
                )
            draft.kwargs["prompt"] = raw.prompt
        elif raw.prompt_file is not None:
            file = self._path(draft, raw.prompt_file, (*draft.path, "prompt_file"))
            if file is not None:
                draft.kwargs["prompt_file"] = file
        elif tool is not None and not runs_command and not {"prompt", "prompt_file"} & draft.broken:
            draft.fail(
                self.problems,
                draft.path,
                "the workstream has no prompt",
                "set `prompt_file:` (a file, relative to the plan's folder)"
                " or `prompt:` (inline text)",
            )
        if runs_command:
            self._resolve_command(draft)
        elif tool is not None:
            for key in ("command", "shell"):
                if getattr(raw, key) is not None:
                    draft.fail(
                        self.problems,
                        (*draft.path, key),
                        f"`{key}` is only used by a tool that runs a command (`tool: shell`)",
                        "remove it, or set `tool: shell`"
                        f" (this workstream uses {draft.kwargs.get('tool')})",
                        at=self.problems.doc.key_pos((*draft.path, key)),
                    )

    def _resolve_command(self, draft: WorkstreamDraft) -> None:
        kw = draft.kwargs
        command = draft.settings.get("command")
        shell_setting = draft.settings.get("shell")
        shell = bool(shell_setting[0]) if shell_setting else False
        kw["shell"] = shell
        if command is None:
            if "command" not in draft.broken and "command" not in self.defaults_broken:
                draft.fail(
                    self.problems,
                    draft.path,
                    f"missing required key 'command' (the {kw.get('tool')} tool runs it)",
                    "write `command: [make, test]`, or one line with `shell: true`",
                )
            else:
                draft.ok = False
            return
        argv = to_argv(self.problems, command[0], shell, command[1], "command")
        if argv is None:
            draft.ok = False
        else:
            kw["command"] = argv

    def _path(self, draft: WorkstreamDraft, text: str, path: KeyPath) -> Path | None:
        """Expand a path (each distinct text once); report a failure where it was written."""
        if text not in self._paths:
            try:
                self._paths[text] = expand_path(text, self.folder, self.environ)
            except PathExpansionError as exc:
                self._paths[text] = exc
        found = self._paths[text]
        if isinstance(found, PathExpansionError):
            draft.fail(self.problems, path, str(found), found.hint)
            return None
        return found

    def _resolve_paths(self, draft: WorkstreamDraft) -> None:
        for name in ("repo", "worktree_root"):
            found = draft.settings.get(name)
            if found is not None:
                path = self._path(draft, found[0], found[1])
                if path is not None:
                    draft.kwargs[name] = path

    def _resolve_settings(self, draft: WorkstreamDraft) -> None:
        kw = draft.kwargs
        for name, (value, _) in draft.settings.items():
            if name in _PASSED:
                kw[name] = value
        resources = draft.settings.get("resources")
        if resources is not None:
            kw["resources"] = _resources(resources[0])
        budget = draft.settings.get("budget")
        if budget is not None:
            kw["budget"] = to_budget(budget[0])
        checks = draft.settings.get("checks")
        if checks is not None:
            resolved = self._resolve_checks(checks[0], checks[1])
            if resolved is None:
                draft.ok = False
            else:
                kw["checks"] = resolved

    def _resolve_checks(self, items: list[Any], path: KeyPath) -> list[Check] | None:
        """Each item on its own, so one bad check does not hide the others' problems."""
        cache_key = id(items)
        if cache_key in self._checks:
            return self._checks[cache_key]
        result: list[Check] | None = []
        for i, item in enumerate(items):
            check = self._check((*path, i), item)
            if check is None or result is None:
                result = None
            else:
                result.append(check)
        self._checks[cache_key] = result
        return result

    def _check(self, path: KeyPath, item: Any) -> Check | None:
        data = {"run": item} if isinstance(item, str) else item
        if not isinstance(data, dict):
            self.problems.add(
                path,
                f"a check must be a command line or a mapping with `run:`, not {describe(item)}",
                "write `- pytest -q` or `- {name: tests, run: pytest -q}`",
            )
            return None
        check, broken = self.problems.validate(RawCheck, data, path, "check")
        if check is None or broken:
            return None
        shell = bool(check.shell)
        argv = to_argv(self.problems, check.run, shell, (*path, "run"), "run")
        if argv is None:
            return None
        name = check.name or (check.run if isinstance(check.run, str) else shlex.join(check.run))
        extra = {} if check.timeout_minutes is None else {"timeout_minutes": check.timeout_minutes}
        return Check(name=name, argv=argv, shell=shell, **extra)


def to_budget(raw: RawBudget) -> Budget:
    return Budget(max_cost_usd=raw.max_cost_usd, max_tokens=raw.max_tokens)


def _resources(raw: RawResources) -> Resources:
    extra: dict[str, Any] = {} if raw.cpus is None else {"cpus": raw.cpus}
    return Resources(memory_bytes=raw.memory, custom=dict(raw.custom), **extra)


def default_worktree_root(draft: WorkstreamDraft, roots: dict[Path, Path]) -> None:
    """Worktrees go beside the repository unless the plan says where.

    Run after ``environment``, which may move ``repo`` to the checkout's top
    level; ``roots`` caches the folder per repository.
    """
    kw = draft.kwargs
    repo = kw.get("repo")
    if "worktree_root" not in draft.settings and repo is not None:
        if repo not in roots:
            roots[repo] = Path(os.path.normpath(repo.parent / "worktrees"))
        kw["worktree_root"] = roots[repo]
