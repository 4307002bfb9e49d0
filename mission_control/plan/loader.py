"""Loading a phase plan: YAML text -> a resolved ``Plan``, or every problem with its line.

Four passes, each reporting all it finds before giving up:

1. ``yaml_nodes`` composes the YAML and records where each key and value was
   written (syntax errors, duplicate keys, recursive aliases);
2. the ``schema`` models check shapes and types one mapping at a time, so a
   typo in one workstream does not hide a problem in the next; a key that
   fails is dropped and the rest of its mapping is still checked;
3. the semantic pass merges ``defaults:``, resolves tools, prompts, commands,
   checks and paths, qualifies ``depends_on`` to ``PHASE::WS`` and looks at
   the file system and git (one set of git calls per repository, cached);
4. graph checks: self-dependencies, dependencies on later phases, cycles, ids
   that would collide as branch or folder names.

Only when nothing is wrong are the frozen ``model`` objects built. Problems
come back sorted by position (``LoadResult``); nothing here prints.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import PlanError, PlanProblem
from ..git.refs import RepoCheckError, RepoRefs, ignores, read_repo_refs
from . import dag
from .files import FileReadError, read_regular_file
from .ids import id_problem, suggest_id
from .model import (
    TOOL_PLACEHOLDERS,
    BaseMode,
    Check,
    OnStall,
    Phase,
    Plan,
    PromptVia,
    PrOptions,
    Resources,
    ToolSpec,
    Workstream,
)
from .paths import PathExpansionError, expand_path
from .schema import (
    RESERVED_RESOURCES,
    RawCheck,
    RawDefaults,
    RawPhase,
    RawPlan,
    RawResources,
    RawTool,
    RawWorkstream,
    allowed_keys,
    describe_error,
    misplaced_hint,
    resource_key_hint,
)
from .tools import BUILTIN_TOOLS
from .yaml_nodes import Document, KeyPath, Pos, parse_document

PLACEHOLDERS: frozenset[str] = frozenset({*TOOL_PLACEHOLDERS, "command"})
"""Names a tool's argv may hold in braces."""

_REQUIRED_SETTINGS = ("repo", "base_branch", "tool", "timeout_minutes")
_SIMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHELL_OPERATORS = frozenset({"&&", "||", "|", ";", ">", ">>", "<", "&", "2>&1"})
_M = TypeVar("_M", bound=BaseModel)
_LATER_HINT = "phases run in order: move one of the two workstreams so the dependency comes first"
_LEVELS = frozenset({"plan", "phase", "workstream", "defaults"})


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What loading a plan gives: the plan, or ``None`` and every problem found."""

    plan: Plan | None
    problems: list[PlanProblem]

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.problems


def load_plan(
    path: Path | str,
    *,
    check_filesystem: bool = True,
    environ: Mapping[str, str] | None = None,
) -> LoadResult:
    """Read and validate the plan file at ``path``.

    ``check_filesystem=False`` skips every look at the disk and at git (repos,
    branches, prompt files): paths are still expanded and made absolute.
    ``environ`` replaces ``os.environ`` for ``$VARS`` in paths.
    """
    path = Path(os.path.abspath(Path(path).expanduser()))
    try:
        raw = read_regular_file(path)
    except FileReadError as exc:
        return LoadResult(None, [_unreadable_plan(path, exc)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return LoadResult(
            None,
            [
                PlanProblem(
                    path,
                    line,
                    column,
                    "",
                    "the file is not UTF-8 text",
                    "save it as UTF-8 (most editors offer it under 'encoding')",
                )
            ],
        )
    return parse_plan(text, path, check_filesystem=check_filesystem, environ=environ)


def _unreadable_plan(path: Path, exc: FileReadError) -> PlanProblem:
    reason = exc.problem.removeprefix("cannot be read")
    if reason != exc.problem:  # an OS error: its own words, in parentheses
        return PlanProblem(path, 1, 1, "", f"cannot read the plan file{reason}", exc.hint)
    hint = exc.hint
    if "not a regular file" in exc.problem:
        hint = "give the path of a YAML plan file"
    elif "does not exist" in exc.problem:
        hint = f"check the path {path}"
    return PlanProblem(path, 1, 1, "", f"cannot read the plan file: it {exc.problem}", hint)


def parse_plan(
    text: str,
    path: Path | str,
    *,
    check_filesystem: bool = True,
    environ: Mapping[str, str] | None = None,
) -> LoadResult:
    """Validate plan ``text`` as if read from ``path`` (relative paths start at its folder)."""
    builder = _Builder(
        text,
        Path(os.path.abspath(Path(path))),
        check_filesystem,
        os.environ if environ is None else environ,
    )
    return builder.build()


def load_plan_or_raise(
    path: Path | str,
    *,
    check_filesystem: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Like ``load_plan``, but return the plan or raise ``PlanError`` with every problem."""
    result = load_plan(path, check_filesystem=check_filesystem, environ=environ)
    if result.plan is None or result.problems:
        raise PlanError(result.problems)
    return result.plan


# ---------------------------------------------------------------- internals


@dataclass(slots=True)
class _Draft:
    """One workstream on its way from the file to a ``Workstream``."""

    phase_index: int
    phase_id: str | None
    path: KeyPath
    raw: RawWorkstream
    broken: set[str]
    kwargs: dict[str, Any] = field(default_factory=dict)
    ok: bool = True

    @property
    def id(self) -> str:
        return self.raw.id


@dataclass(slots=True)
class _PhaseDraft:
    index: int
    path: KeyPath
    id: str | None
    raw: RawPhase | None
    workstreams: list[_Draft] = field(default_factory=list)
    ids: dict[str, KeyPath] = field(default_factory=dict)
    """Every usable workstream id of the phase, where it was written."""
    written: set[str] = field(default_factory=set)
    """Every workstream id written in the phase, usable or not."""


def _close(word: str, options: Iterable[str]) -> str | None:
    """The option ``word`` most likely meant: same letters in another case, else the closest."""
    candidates = list(options)
    for option in candidates:
        if option.casefold() == word.casefold():
            return option
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return "text"


def _short(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _prompt_file_problem(file: Path) -> tuple[str, str] | None:
    """What keeps the run from reading ``file`` as its prompt, and the fix ("" for the usual)."""
    try:
        read_regular_file(file).decode("utf-8")
    except FileReadError as exc:
        if "does not exist" in exc.problem:
            return exc.problem, ""
        if exc.problem == "is a folder, not a regular file":
            return "is a folder, not a file", ""
        return exc.problem, exc.hint
    except UnicodeDecodeError as exc:
        return (
            f"is not UTF-8 text (byte {exc.start + 1} cannot be decoded)",
            "save it as UTF-8 (most editors offer it under 'encoding')",
        )
    return None


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _root_problem(root: Path, refs: RepoRefs) -> tuple[str, str] | None:
    """Why worktrees cannot go under ``root`` for the repository ``refs``, and the fix."""
    real = os.path.realpath(root)
    toplevel = Path(os.path.realpath(refs.toplevel))
    outside = f"put it outside the repository, e.g. '{toplevel.parent / 'worktrees'}'"
    for git_dir in refs.git_dirs:
        if _within(real, os.path.realpath(git_dir)):
            return (
                f"worktree_root {str(root)!r} is inside the git folder {git_dir}",
                outside + " (the default)",
            )
    if refs.bare or not _within(real, str(toplevel)):
        return None
    relative = os.path.relpath(real, toplevel)
    if relative != os.curdir and ignores(toplevel, relative):
        return None  # ignored: its worktrees stay out of `git status`
    return (
        f"worktree_root {str(root)!r} is inside the repository {toplevel}:"
        " its worktrees would show as untracked files in `git status`",
        outside
        + " (the default)"
        + (f", or add '{relative}/' to .gitignore" if relative != os.curdir else ""),
    )


def _placeholders(item: str) -> list[str]:
    """The ``{names}`` in one argv item; raises ``ValueError`` on unbalanced braces."""
    return [name for _, name, _, _ in string.Formatter().parse(item) if name is not None]


class _Builder:
    def __init__(self, text: str, path: Path, check_filesystem: bool, environ: Mapping[str, str]):
        self.text = text
        self.path = path
        self.folder = path.parent
        self.check_filesystem = check_filesystem
        self.environ = environ
        self.problems: list[PlanProblem] = []
        self.doc = Document(data=None)
        self.defaults = RawDefaults()
        self.defaults_broken: set[str] = set()
        self.tools: dict[str, ToolSpec] = dict(BUILTIN_TOOLS)
        self.broken_tools: set[str] = set()
        self.phases: list[_PhaseDraft] = []
        self._repos: dict[Path, RepoRefs | RepoCheckError] = {}
        self._paths: dict[str, Path | PathExpansionError] = {}
        self._files: dict[Path, tuple[str, str] | None] = {}
        self._checks: dict[int, list[Check] | None] = {}
        self._by_id: dict[str, _PhaseDraft] | None = None
        self._roots: dict[tuple[Path, Path], tuple[str, str] | None] = {}
        self._yaml_issues: set[KeyPath] = set()
        """Values the YAML pass reported already: a type error there would say it twice."""

    # ------------------------------------------------------------ reporting

    def problem(
        self, path: KeyPath, message: str, hint: str = "", *, at: Pos | None = None
    ) -> None:
        line, column = at if at is not None else self.doc.pos(path)
        self.problems.append(
            PlanProblem(self.path, line, column, self.display(path), message, hint)
        )

    def display(self, path: KeyPath) -> str:
        """``phases[PH-07].workstreams[WS-07A].checks[0].run``: ids where the file has them."""
        parts: list[str] = []
        node: object = self.doc.data
        previous: str | int | None = None
        for element in path:
            if isinstance(element, int):
                item = node[element] if isinstance(node, list) and element < len(node) else None
                label = str(element)
                if previous in ("phases", "workstreams") and isinstance(item, dict):
                    ident = item.get("id")
                    if isinstance(ident, str) and _SIMPLE_ID.match(ident):
                        label = ident
                parts.append(f"[{label}]")
                node = item
            else:
                parts.append(("." if parts else "") + element)
                node = node.get(element) if isinstance(node, dict) else None
            previous = element
        return "".join(parts)

    def _got(self, path: KeyPath) -> str | None:
        if "env" in path:
            return None  # environment values hold secrets: never echo them
        text = self.doc.texts.get(path)
        if text is not None:
            return _short(text) if text else "''"
        node: object = self.doc.data
        for element in path:
            if isinstance(node, dict) and isinstance(element, str):
                node = node.get(element)
            elif isinstance(node, list) and isinstance(element, int) and element < len(node):
                node = node[element]
            else:
                return None
        return _describe(node)

    def _validate(
        self, model: type[_M], data: dict[str, Any], path: KeyPath, kind: str
    ) -> tuple[_M | None, set[str]]:
        """Validate one mapping; report each error; retry without the keys that failed."""
        try:
            return model.model_validate(data), set()
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        broken: set[str] = set()
        for err in errors:
            self._report_pydantic(err, path, kind)
            loc = err["loc"]
            if loc and isinstance(loc[0], str) and err["type"] != "missing":
                broken.add(loc[0])
        if any(err["type"] == "missing" and len(err["loc"]) == 1 for err in errors):
            return None, broken
        try:
            return model.model_validate({k: v for k, v in data.items() if k not in broken}), broken
        except ValidationError:  # pragma: no cover - dropping the failed keys always validates
            return None, broken

    def _report_pydantic(self, err: Any, base: KeyPath, kind: str) -> None:
        loc: KeyPath = tuple(e for e in err["loc"] if isinstance(e, str | int))
        full = base + loc
        if full in self._yaml_issues:
            return
        kind_of_parent = kind
        if len(loc) >= 2 and loc[-2] == "pr":
            kind_of_parent = "pr"
        if len(loc) == 2 and loc[0] == "resources":
            kind_of_parent = "resources"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = allowed_keys(kind_of_parent)
            suggestion = _close(key, allowed)
            where = misplaced_hint(key) if kind_of_parent in _LEVELS else None
            if kind_of_parent == "resources":
                where = resource_key_hint(key)
            if where is not None:
                hint = where
            elif suggestion:
                hint = f"did you mean '{suggestion}'?"
            else:
                hint = "known keys: " + ", ".join(sorted(allowed))
            self.problem(full, f"unknown key '{key}'", hint, at=self.doc.key_pos(full))
            return
        field_name = next((str(e) for e in reversed(loc) if isinstance(e, str)), kind)
        if len(loc) == 3 and loc[:2] == ("resources", "custom"):
            field_name = "custom resource"  # an amount: the name is the resource's own
        if err["type"] == "missing":
            parent = full[:-1]
            message, hint = describe_error(err, field_name, None)
            self.problem(parent, message, hint)
            return
        message, hint = describe_error(err, field_name, self._got(full))
        if "env" in loc and err["type"] == "string_type":
            hint = "an environment value is text (numbers and true/false are kept as written)"
        self.problem(full, message, hint)

    # ------------------------------------------------------------ the passes

    def build(self) -> LoadResult:
        doc, issues = parse_document(self.text)
        if doc is not None:
            self.doc = doc
        for issue in issues:
            self.problem(issue.path, issue.message, issue.hint, at=issue.pos)
            self._yaml_issues.add(issue.path)
        if doc is None:
            return self._result(None)
        data = doc.data
        if data is None:
            self.problem(
                (),
                "the plan is empty",
                "start with `version: 1` and `phases:` (see sample_plans/ for examples)",
            )
            return self._result(None)
        if not isinstance(data, dict):
            self.problem(
                (),
                "the plan must be a mapping (version, defaults, tools, phases),"
                f" not {_describe(data)}",
                "start the file with `phases:` at the left margin",
            )
            return self._result(None)
        # Top-level `x-...` keys hold YAML anchors for reuse (as in docker compose).
        data = {k: v for k, v in data.items() if not k.startswith("x-")}
        raw_plan, _ = self._validate(RawPlan, data, (), "plan")
        if raw_plan is None:  # pragma: no cover - RawPlan has no required key
            return self._result(None)
        self._load_defaults(raw_plan)
        self._load_tools(raw_plan)
        self._load_phases(raw_plan, data)
        for phase in self.phases:
            for draft in phase.workstreams:
                self._resolve(phase, draft)
        self._check_cycles()
        self._check_folders()
        if self.problems:
            return self._result(None)
        return self._result(self._assemble(raw_plan))

    def _result(self, plan: Plan | None) -> LoadResult:
        unique = {(p.line, p.column, p.key_path, p.message, p.hint): p for p in self.problems}
        problems = sorted(unique.values(), key=lambda p: (p.line, p.column))
        return LoadResult(plan if not problems else None, problems)

    def _load_defaults(self, raw_plan: RawPlan) -> None:
        if "defaults" not in raw_plan.model_fields_set:
            return
        path: KeyPath = ("defaults",)
        data = self._env_as_text(raw_plan.defaults, path)
        self._check_resource_names(data, path)
        defaults, broken = self._validate(RawDefaults, data, path, "defaults")
        if defaults is not None:
            self.defaults = defaults
            self._check_env_keys(defaults.env, path)
        self.defaults_broken = broken | (set(data) if defaults is None else set())

    def _load_tools(self, raw_plan: RawPlan) -> None:
        for name, data in raw_plan.tools.items():
            path: KeyPath = ("tools", name)
            if not name.strip() or any(ch.isspace() for ch in name) or "{" in name:
                self.problem(
                    path,
                    f"tool name {name!r} cannot hold spaces or braces",
                    "name it like a command: my-agent",
                    at=self.doc.key_pos(path),
                )
            if not isinstance(data, dict):
                self.problem(
                    path,
                    f"a tool must be a mapping with `argv:`, not {_describe(data)}",
                    "write argv: [my-agent, --message-file, '{prompt_file}']",
                )
                self.broken_tools.add(name)
                continue
            raw, broken = self._validate(RawTool, self._env_as_text(data, path), path, "tool")
            spec = (
                self._tool_spec(name, raw, path)
                if raw is not None and "argv" not in broken
                else None
            )
            if spec is None:
                self.broken_tools.add(name)
            else:
                self.tools[name] = spec

    def _tool_spec(self, name: str, raw: RawTool, path: KeyPath) -> ToolSpec | None:
        shell = bool(raw.shell)
        argv = self._argv(raw.argv, shell, (*path, "argv"), "argv")
        if argv is None:
            return None
        ok = True
        names: set[str] = set()
        for i, item in enumerate(argv):
            item_path = (*path, "argv", i) if isinstance(raw.argv, list) else (*path, "argv")
            try:
                found = _placeholders(item)
            except ValueError:
                self.problem(
                    item_path,
                    f"unbalanced brace in {_short(item)!r}",
                    "placeholders look like {prompt_file}; write {{ or }} for a literal brace",
                )
                ok = False
                continue
            for placeholder in found:
                if placeholder not in PLACEHOLDERS:
                    close = _close(placeholder, PLACEHOLDERS)
                    hint = f"did you mean {{{close}}}?" if close else ""
                    known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                    self.problem(
                        item_path,
                        f"unknown placeholder {{{placeholder}}}",
                        (hint + " " if hint else "") + f"known: {known}",
                    )
                    ok = False
                names.add(placeholder)
        via = PromptVia(raw.prompt_via) if raw.prompt_via else PromptVia.FILE
        needed = {PromptVia.FILE: "prompt_file", PromptVia.ARG: "prompt"}.get(via)
        if ok and needed and needed not in names and "command" not in names:
            self.problem(
                (*path, "prompt_via") if raw.prompt_via else (*path, "argv"),
                f"prompt_via is {via.value} but argv never uses {{{needed}}}",
                f"add '{{{needed}}}' where the tool expects the prompt, or set prompt_via: stdin",
            )
            ok = False
        self._check_env_keys(raw.env, path)
        if not ok:
            return None
        return ToolSpec(
            argv=argv,
            prompt_via=via,
            env=raw.env,
            shell=shell,
            install_hint=raw.install_hint or "",
        )

    def _argv(
        self, value: str | list[str], shell: bool, path: KeyPath, what: str
    ) -> list[str] | None:
        """A command as an argv list: text is split like a shell would, unless ``shell``."""
        if isinstance(value, str):
            if not value.strip():
                self.problem(path, f"{what} is empty", "write the command to run")
                return None
            if shell:
                return [value]
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                self.problem(
                    path,
                    f"cannot split {_short(value)!r} into arguments ({exc})",
                    "close the quote, or write it as a list of arguments",
                )
                return None
            try:
                operators = [t for t in shlex.split(value, posix=False) if t in _SHELL_OPERATORS]
            except ValueError:  # pragma: no cover - posix split succeeded above
                operators = []
            if operators:
                self.problem(
                    path,
                    f"{_short(value)!r} uses shell syntax ({operators[0]})"
                    " but runs without a shell",
                    "add `shell: true`, or split it into separate commands",
                )
                return None
            return argv
        if not value:
            self.problem(path, f"{what} is an empty list", "write the command to run")
            return None
        if shell and len(value) != 1:
            self.problem(
                path,
                f"with shell: true, {what} must be one command line, not {len(value)} items",
                "write it as one line of text, or drop `shell: true`",
            )
            return None
        return list(value)

    def _load_phases(self, raw_plan: RawPlan, data: dict[str, Any]) -> None:
        if raw_plan.phases is None:
            if "phases" not in data:
                self.problem(
                    (), "missing required key 'phases'", "add `phases:` with at least one phase"
                )
            return
        if not raw_plan.phases:
            self.problem(
                ("phases",), "the plan has no phases", "add at least one phase under `phases:`"
            )
            return
        seen: dict[str, KeyPath] = {}
        folded: dict[str, tuple[str, KeyPath]] = {}
        for index, item in enumerate(raw_plan.phases):
            path: KeyPath = ("phases", index)
            if not isinstance(item, dict):
                self.problem(
                    path,
                    "a phase must be a mapping (id, name, max_parallel_workstreams,"
                    f" workstreams), not {_describe(item)}",
                    "write `- id: PH-01` and indent the phase's keys under it",
                )
                continue
            raw, _ = self._validate(RawPhase, item, path, "phase")
            phase_id = raw.id if raw is not None else None
            if raw is None and isinstance(item.get("id"), str):
                phase_id = item["id"]
            draft = _PhaseDraft(index, path, None, raw)
            if phase_id is not None and self._check_id(phase_id, (*path, "id"), "phase"):
                if phase_id in seen:
                    self.problem(
                        (*path, "id"),
                        f"duplicate phase id '{phase_id}'"
                        f" (first at line {self.doc.pos(seen[phase_id])[0]})",
                        "give every phase its own id",
                    )
                elif phase_id.casefold() in folded:
                    other, other_path = folded[phase_id.casefold()]
                    self.problem(
                        (*path, "id"),
                        f"phase id '{phase_id}' differs from '{other}'"
                        f" (line {self.doc.pos(other_path)[0]}) only in case",
                        "their branches and folders would collide on Windows and macOS: rename one",
                    )
                else:
                    seen[phase_id] = (*path, "id")
                    folded[phase_id.casefold()] = (phase_id, (*path, "id"))
                    draft.id = phase_id
            self.phases.append(draft)
            workstreams = item.get("workstreams")
            if "workstreams" not in item:
                continue  # reported as missing by the schema
            if not isinstance(workstreams, list):
                continue  # reported as a type error by the schema
            if not workstreams:
                self.problem(
                    (*path, "workstreams"),
                    "the phase has no workstreams",
                    "add at least one workstream, or remove the phase",
                )
                continue
            self._load_workstreams(draft, workstreams)

    def _load_workstreams(self, phase: _PhaseDraft, items: list[Any]) -> None:
        folded: dict[str, str] = {}
        for index, item in enumerate(items):
            path: KeyPath = (*phase.path, "workstreams", index)
            if not isinstance(item, dict):
                self.problem(
                    path,
                    f"a workstream must be a mapping (id, name, tool, ...), not {_describe(item)}",
                    "write `- id: WS-01` and indent the workstream's keys under it",
                )
                continue
            ident = item.get("id")
            if isinstance(ident, str):
                phase.written.add(ident)
            if isinstance(ident, str) and self._check_id(ident, (*path, "id"), "workstream"):
                if ident in phase.ids:
                    first = self.doc.pos(phase.ids[ident])[0]
                    self.problem(
                        (*path, "id"),
                        f"duplicate workstream id '{ident}' in phase"
                        f" {phase.id or phase.index} (first at line {first})",
                        "ids must be unique within a phase",
                    )
                    ident = None
                elif ident.casefold() in folded:
                    other = folded[ident.casefold()]
                    self.problem(
                        (*path, "id"),
                        f"workstream id '{ident}' differs from '{other}'"
                        f" (line {self.doc.pos(phase.ids[other])[0]}) only in case",
                        "their branches and folders would collide on Windows and macOS: rename one",
                    )
                    ident = None
                else:
                    phase.ids[ident] = (*path, "id")
                    folded[ident.casefold()] = ident
            else:
                ident = None
            self._check_resource_names(item, path)
            raw, broken = self._validate(
                RawWorkstream, self._env_as_text(item, path), path, "workstream"
            )
            if raw is None:
                continue
            draft = _Draft(
                phase.index,
                phase.id,
                path,
                raw,
                broken,
                ok=ident is not None and phase.id is not None,
            )
            phase.workstreams.append(draft)

    def _check_id(self, value: str, path: KeyPath, what: str) -> bool:
        reason = id_problem(value)
        if reason is None:
            return True
        self.problem(
            path,
            f"{what} id {_short(value)!r} cannot be used in a branch or folder name: it {reason}",
            f"use letters, digits, '-', '_' and '.', e.g. '{suggest_id(value)}'",
        )
        return False

    def _env_as_text(self, data: dict[str, Any], path: KeyPath) -> dict[str, Any]:
        """Environment values as written (``PORT: 08`` stays "08", ``X: yes`` stays "yes")."""
        env = data.get("env")
        if not isinstance(env, dict):
            return data
        texts = self.doc.texts
        converted = {
            key: texts.get((*path, "env", key), value)
            if isinstance(value, bool | int | float)
            else value
            for key, value in env.items()
        }
        return {**data, "env": converted}

    def _check_env_keys(self, env: Mapping[str, str] | None, path: KeyPath) -> None:
        for key in env or {}:
            if not key or "=" in key or "\0" in key:
                self.problem(
                    (*path, "env", key),
                    f"{key!r} cannot be an environment variable name",
                    "use letters, digits and '_', e.g. API_KEY",
                    at=self.doc.key_pos((*path, "env", key)),
                )

    def _check_resource_names(self, data: Mapping[str, Any], path: KeyPath) -> None:
        """Custom resource names as Ray takes them: no blanks, none of Ray's own names.

        Read from the mapping as written, so a bad amount next to a name hides neither.
        """
        resources = data.get("resources")
        custom = resources.get("custom") if isinstance(resources, dict) else None
        for name in custom if isinstance(custom, dict) else {}:
            key_path: KeyPath = (*path, "resources", "custom", name)
            at = self.doc.key_pos(key_path)
            if not name.strip() or any(ch.isspace() for ch in name):
                self.problem(
                    key_path,
                    f"custom resource name {name!r} cannot be empty or hold spaces",
                    "name it as the nodes advertise it, e.g. gpu_box",
                    at=at,
                )
            elif name in RESERVED_RESOURCES:
                self.problem(
                    key_path,
                    f"'{name}' cannot be a custom resource (Ray reserves the name)",
                    RESERVED_RESOURCES[name],
                    at=at,
                )

    # ------------------------------------------------------------ one workstream

    def _setting(self, draft: _Draft, name: str) -> tuple[Any, KeyPath] | None:
        value = getattr(draft.raw, name)
        if value is not None:
            return value, (*draft.path, name)
        value = getattr(self.defaults, name, None)
        if value is not None:
            return value, ("defaults", name)
        return None

    def _fail(
        self, draft: _Draft, path: KeyPath, message: str, hint: str = "", *, at: Pos | None = None
    ) -> None:
        draft.ok = False
        self.problem(path, message, hint, at=at)

    def _resolve(self, phase: _PhaseDraft, draft: _Draft) -> None:
        raw = draft.raw
        kw = draft.kwargs
        kw["id"] = raw.id
        kw["name"] = raw.name if raw.name is not None else raw.id
        kw["phase_id"] = phase.id or ""
        kw["line"] = self.doc.pos(draft.path)[0]
        for name in _REQUIRED_SETTINGS:
            if self._setting(draft, name) is None and name not in draft.broken:
                draft.ok = False
                if name not in self.defaults_broken:
                    self.problem(
                        draft.path,
                        f"missing required key '{name}'",
                        f"set `{name}:` on the workstream or under `defaults:`",
                    )
        tool = self._resolve_tool(draft)
        self._resolve_prompt(draft, tool)
        self._resolve_repo(draft)
        self._resolve_settings(draft)
        if phase.id is not None:
            self._resolve_dependencies(phase, draft)
        else:
            draft.ok = False

    def _resolve_tool(self, draft: _Draft) -> ToolSpec | None:
        found = self._setting(draft, "tool")
        if found is None:
            return None
        name, path = found
        draft.kwargs["tool"] = name
        if name in self.broken_tools:
            draft.ok = False
            return None
        spec = self.tools.get(name)
        if spec is None:
            close = _close(name, self.tools)
            known = ", ".join(sorted(self.tools))
            hint = (
                f"did you mean '{close}'? " if close else ""
            ) + f"known tools: {known}; or define it under `tools:`"
            self._fail(draft, path, f"unknown tool '{name}'", hint)
        return spec

    def _resolve_prompt(self, draft: _Draft, tool: ToolSpec | None) -> None:
        raw = draft.raw
        kw = draft.kwargs
        runs_command = tool is not None and any("{command}" in item for item in tool.argv)
        if raw.prompt is not None and raw.prompt_file is not None:
            self._fail(
                draft,
                (*draft.path, "prompt_file"),
                "both `prompt` and `prompt_file` are set",
                "keep one: inline text in `prompt:`, or a file in `prompt_file:`",
                at=self.doc.key_pos((*draft.path, "prompt_file")),
            )
        elif raw.prompt is not None:
            if not raw.prompt.strip():
                self._fail(
                    draft,
                    (*draft.path, "prompt"),
                    "the prompt is empty",
                    "write what the tool should do",
                )
            kw["prompt"] = raw.prompt
        elif raw.prompt_file is not None:
            file = self._path(draft, raw.prompt_file, (*draft.path, "prompt_file"))
            if file is not None:
                kw["prompt_file"] = file
                if self.check_filesystem:
                    self._check_file(draft, file, (*draft.path, "prompt_file"))
        elif tool is not None and not runs_command and not {"prompt", "prompt_file"} & draft.broken:
            self._fail(
                draft,
                draft.path,
                "the workstream has no prompt",
                "set `prompt_file:` (a file, relative to the plan's folder)"
                " or `prompt:` (inline text)",
            )
        command = self._setting(draft, "command")
        shell_setting = self._setting(draft, "shell")
        shell = bool(shell_setting[0]) if shell_setting else False
        if runs_command:
            kw["shell"] = shell
            if command is None:
                if "command" not in draft.broken and "command" not in self.defaults_broken:
                    self._fail(
                        draft,
                        draft.path,
                        f"missing required key 'command' (the {kw.get('tool')} tool runs it)",
                        "write `command: [make, test]`, or one line with `shell: true`",
                    )
                else:
                    draft.ok = False
                return
            argv = self._argv(command[0], shell, command[1], "command")
            if argv is None:
                draft.ok = False
            else:
                kw["command"] = argv
        elif tool is not None:
            for key in ("command", "shell"):
                if getattr(draft.raw, key) is not None:
                    self._fail(
                        draft,
                        (*draft.path, key),
                        f"`{key}` is only used by a tool that runs a command (`tool: shell`)",
                        f"remove it, or set `tool: shell` (this workstream uses {kw.get('tool')})",
                        at=self.doc.key_pos((*draft.path, key)),
                    )

    def _path(self, draft: _Draft, text: str, path: KeyPath) -> Path | None:
        """Expand a path (each distinct text once); report a failure where it was written."""
        if text not in self._paths:
            try:
                self._paths[text] = expand_path(text, self.folder, self.environ)
            except PathExpansionError as exc:
                self._paths[text] = exc
        found = self._paths[text]
        if isinstance(found, PathExpansionError):
            self.problem(path, str(found), found.hint)
            draft.ok = False
            return None
        return found

    def _where_hint(self, text: str) -> str:
        hint = f"relative paths start at the plan's folder ({self.folder})"
        if "\\" in text and os.sep == "/":
            hint = "a backslash is not a folder separator here: write '/' instead; " + hint
        return hint

    def _check_file(self, draft: _Draft, file: Path, path: KeyPath) -> None:
        """Read the prompt file as the run will: a file that fails here fails validation."""
        if file not in self._files:
            self._files[file] = _prompt_file_problem(file)
        found = self._files[file]
        if found is not None:
            reason, hint = found
            text = self.doc.texts.get(path, str(file))
            self._fail(
                draft,
                path,
                f"prompt file {str(file)!r} {reason}",
                hint or ("create it, or fix the path; " + self._where_hint(text)),
            )

    def _repo_refs(self, repo: Path) -> RepoRefs | RepoCheckError:
        if repo not in self._repos:
            try:
                self._repos[repo] = read_repo_refs(repo)
            except RepoCheckError as exc:
                self._repos[repo] = exc
        return self._repos[repo]

    def _resolve_repo(self, draft: _Draft) -> None:
        kw = draft.kwargs
        found = self._setting(draft, "repo")
        refs: RepoRefs | None = None
        if found is not None:
            text, path = found
            repo = self._path(draft, text, path)
            if repo is not None and self.check_filesystem:
                checked = self._repo_refs(repo)
                if isinstance(checked, RepoCheckError):
                    hint = checked.hint
                    if checked.problem == "does not exist":
                        hint = "check the path; " + self._where_hint(text)
                    self._fail(draft, path, f"repo {str(repo)!r} {checked.problem}", hint)
                    repo = None
                else:
                    refs = checked
                    repo = checked.toplevel
            if repo is not None:
                kw["repo"] = repo
        remote_found = self._setting(draft, "remote")
        remote = remote_found[0] if remote_found else "origin"
        branch_found = self._setting(draft, "base_branch")
        if branch_found is not None:
            branch, path = branch_found
            kw["base_branch"] = branch
            if refs is not None and not refs.has_branch(branch, remote):
                close = _close(branch, refs.branches)
                shown = ", ".join(refs.branches[:8]) or "none"
                hint = f"did you mean '{close}'? " if close else ""
                hint += f"create it, or run `git fetch {remote}`; branches: {shown}"
                self._fail(
                    draft,
                    path,
                    f"base branch '{branch}' is not in {kw['repo']}"
                    f" (neither a local branch nor {remote}/{branch})",
                    hint,
                )
        push_found = self._setting(draft, "push")
        push = push_found[0] if push_found else True
        # Pushing is skipped when the repository has no such remote; only a remote or
        # a push the plan asks for by name must exist.
        asked = remote_found is not None or (push_found is not None and push)
        if refs is not None and push and asked and remote not in refs.remotes:
            at_path = (
                remote_found[1] if remote_found else push_found[1] if push_found else draft.path
            )
            self._fail(
                draft,
                at_path,
                f"remote '{remote}' is not configured in {kw['repo']},"
                " so the branch cannot be pushed",
                f"add it (git remote add {remote} URL), or set `push: false`",
            )
        root = self._setting(draft, "worktree_root")
        if root is not None:
            root_path = self._path(draft, root[0], root[1])
            if root_path is not None:
                kw["worktree_root"] = root_path
                if self.check_filesystem:
                    try:
                        bad = root_path.exists() and not root_path.is_dir()
                    except (OSError, ValueError):
                        bad = True
                    if bad:
                        self._fail(
                            draft,
                            root[1],
                            f"worktree_root {str(root_path)!r} is not a folder",
                            "point it at a folder (it is created when missing)",
                        )
                    elif refs is not None:
                        self._check_root_outside(draft, root_path, refs, root[1])
        elif "repo" in kw:
            kw["worktree_root"] = Path(os.path.normpath(kw["repo"].parent / "worktrees"))

    def _check_root_outside(self, draft: _Draft, root: Path, refs: RepoRefs, path: KeyPath) -> None:
        """Worktrees inside the checkout show in its `git status`; inside .git, git trips."""
        key = (root, refs.toplevel)
        if key not in self._roots:
            self._roots[key] = _root_problem(root, refs)
        found = self._roots[key]
        if found is not None:
            self._fail(draft, path, *found)

    def _resolve_settings(self, draft: _Draft) -> None:
        kw = draft.kwargs
        for name in (
            "timeout_minutes",
            "retries",
            "push",
            "remote",
            "require_changes",
            "stall_minutes",
        ):
            found = self._setting(draft, name)
            if found is not None:
                kw[name] = found[0]
        base = self._setting(draft, "base")
        if base is not None:
            kw["base"] = BaseMode(base[0])
        on_stall = self._setting(draft, "on_stall")
        if on_stall is not None:
            kw["on_stall"] = OnStall(on_stall[0])
        resources = self._setting(draft, "resources")
        if resources is not None:
            raw_resources: RawResources = resources[0]
            extra: dict[str, Any] = {}
            if raw_resources.cpus is not None:
                extra["cpus"] = raw_resources.cpus
            kw["resources"] = Resources(
                memory_bytes=raw_resources.memory, custom=dict(raw_resources.custom), **extra
            )
        env = dict(self.defaults.env or {})
        env.update(draft.raw.env or {})
        self._check_env_keys(draft.raw.env, draft.path)
        kw["env"] = env
        pr: dict[str, Any] = {}
        for source in (self.defaults.pr, draft.raw.pr):
            if source is not None:
                pr.update(source.model_dump(exclude_unset=True))
        kw["pr"] = PrOptions(**pr)
        checks = self._setting(draft, "checks")
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
            item_path = (*path, i)
            data = {"run": item} if isinstance(item, str) else item
            if not isinstance(data, dict):
                self.problem(
                    item_path,
                    "a check must be a command line or a mapping with `run:`,"
                    f" not {_describe(item)}",
                    "write `- pytest -q` or `- {name: tests, run: pytest -q}`",
                )
                result = None
                continue
            check, broken = self._validate(RawCheck, data, item_path, "check")
            if check is None or broken:
                result = None
                continue
            shell = bool(check.shell)
            argv = self._argv(check.run, shell, (*item_path, "run"), "run")
            if argv is None or result is None:
                result = None
                continue
            name = check.name or (
                check.run if isinstance(check.run, str) else shlex.join(check.run)
            )
            extra = (
                {} if check.timeout_minutes is None else {"timeout_minutes": check.timeout_minutes}
            )
            result.append(Check(name=name, argv=argv, shell=shell, **extra))
        self._checks[cache_key] = result
        return result

    def _resolve_dependencies(self, phase: _PhaseDraft, draft: _Draft) -> None:
        qualified: list[str] = []
        own = draft.raw.id
        for k, dep in enumerate(draft.raw.depends_on):
            path: KeyPath = (*draft.path, "depends_on", k)
            target = self._dependency(phase, own, dep, path)
            if target is None:
                draft.ok = False
            elif target not in qualified:
                qualified.append(target)
        draft.kwargs["depends_on"] = qualified

    def _phases_by_id(self) -> dict[str, _PhaseDraft]:
        if self._by_id is None:
            self._by_id = {p.id: p for p in self.phases if p.id is not None}
        return self._by_id

    def _dependency(self, phase: _PhaseDraft, own: str, dep: str, path: KeyPath) -> str | None:
        by_id = self._phases_by_id()
        shape_hint = (
            "write WS-ID for a workstream of this phase,"
            " or PHASE::WS-ID for one of an earlier phase"
        )
        if "::" in dep:
            phase_part, _, ws_part = dep.partition("::")
            if not phase_part or not ws_part or "::" in ws_part:
                self.problem(path, f"{dep!r} is not a workstream id", shape_hint)
                return None
            target_phase = by_id.get(phase_part)
            if target_phase is not None and ws_part in target_phase.written - set(target_phase.ids):
                return None  # its id is reported as unusable already
            if target_phase is None or ws_part not in target_phase.ids:
                all_ids = [f"{p.id}::{w}" for p in self.phases if p.id for w in p.ids]
                close = _close(dep, all_ids)
                self.problem(
                    path,
                    f"unknown dependency '{dep}'",
                    f"did you mean '{close}'?" if close else shape_hint,
                )
                return None
            if target_phase.index > phase.index:
                self.problem(
                    path,
                    f"depends on '{dep}', which is in a later phase",
                    _LATER_HINT,
                )
                return None
            if target_phase is not phase:
                return dep
            ws_id = ws_part
        else:
            ws_id = dep
        if not ws_id:
            self.problem(path, "an empty dependency", shape_hint)
            return None
        if ws_id == own:
            self.problem(path, f"'{own}' depends on itself", f"remove '{dep}' from its depends_on")
            return None
        if ws_id not in phase.ids and ws_id in phase.written:
            return None  # its id is reported as unusable already
        if ws_id not in phase.ids:
            elsewhere = [p for p in self.phases if p.id and p is not phase and ws_id in p.ids]
            if elsewhere:
                other = elsewhere[0]
                if other.index < phase.index:
                    hint = f"it is in phase {other.id}: write '{other.id}::{ws_id}'"
                    self.problem(path, f"unknown dependency '{dep}' in phase {phase.id}", hint)
                else:
                    self.problem(
                        path,
                        f"depends on '{other.id}::{ws_id}', which is in a later phase",
                        _LATER_HINT,
                    )
                return None
            close = _close(ws_id, [i for i in phase.ids if i != own])
            hint = (
                f"did you mean '{close}'?"
                if close
                else "ids in this phase: " + ", ".join(phase.ids)
            )
            self.problem(path, f"unknown dependency '{dep}'", hint)
            return None
        return f"{phase.id}::{ws_id}"

    # ------------------------------------------------------------ whole-plan checks

    def _check_cycles(self) -> None:
        for phase in self.phases:
            if phase.id is None:
                continue
            prefix = f"{phase.id}::"
            graph: dict[str, list[str]] = {}
            paths: dict[str, KeyPath] = {}
            for draft in phase.workstreams:
                if draft.raw.id in graph or draft.raw.id not in phase.ids:
                    continue
                deps = draft.kwargs.get("depends_on", [])
                graph[draft.raw.id] = [d[len(prefix) :] for d in deps if d.startswith(prefix)]
                paths[draft.raw.id] = (*draft.path, "depends_on")
            for cycle in dag.find_cycles(graph):
                self.problem(
                    paths[cycle[0]],
                    "dependency cycle: " + " -> ".join(cycle),
                    "each arrow reads 'depends on': remove one of these dependencies",
                )
                for draft in phase.workstreams:
                    if draft.raw.id in cycle:
                        draft.ok = False

    def _check_folders(self) -> None:
        """``PH-1`` + ``A`` and ``PH`` + ``1-A`` would share the folder ``PH-1-A``."""
        seen: dict[tuple[str, str], str] = {}
        for phase in self.phases:
            for draft in phase.workstreams:
                root = draft.kwargs.get("worktree_root")
                if phase.id is None or root is None:
                    continue
                folder = f"{phase.id}-{draft.raw.id}"
                key = (str(root).casefold(), folder.casefold())
                task = f"{phase.id}::{draft.raw.id}"
                if key in seen and seen[key] != task:
                    self._fail(
                        draft,
                        (*draft.path, "id"),
                        f"{task} and {seen[key]} would share the worktree folder {folder}",
                        "rename one of them",
                    )
                else:
                    seen.setdefault(key, task)

    # ------------------------------------------------------------ models

    def _assemble(self, raw_plan: RawPlan) -> Plan | None:
        phases: list[Phase] = []
        for phase in self.phases:
            raw = phase.raw
            if raw is None or phase.id is None:  # pragma: no cover - reported before
                return None
            workstreams: list[Workstream] = []
            for draft in phase.workstreams:
                try:
                    workstreams.append(Workstream(**draft.kwargs))
                except ValidationError as exc:  # pragma: no cover - the schema checks first
                    self.problem(draft.path, f"invalid workstream ({exc.errors()[0]['msg']})")
                    return None
            phases.append(
                Phase(
                    id=phase.id,
                    name=raw.name if raw.name is not None else phase.id,
                    max_parallel_workstreams=raw.max_parallel_workstreams,
                    workstreams=workstreams,
                    line=self.doc.pos(phase.path)[0],
                )
            )
        extra: dict[str, Any] = {}
        if raw_plan.grace_seconds is not None:
            extra["grace_seconds"] = raw_plan.grace_seconds
        return Plan(
            path=self.path,
            name=raw_plan.name if raw_plan.name is not None else self.path.stem,
            version=1,
            phases=phases,
            tools=self.tools,
            **extra,
        )
