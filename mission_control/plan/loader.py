"""Loading a phase plan: YAML text -> a resolved ``Plan``, or every problem with its line.

The loader is a row of passes, one module each, every one reporting all it
finds (through ``problems``) before the next runs:

1. ``shapes``: compose the YAML (``yaml_nodes``) and check each mapping
   against the ``schema`` models; ids checked where they are written;
2. ``merge``: ``defaults:`` merged into each workstream, over the fields;
3. ``resolve`` and ``argv``: tools, prompts, commands, checks, paths;
   ``dependencies``: ``depends_on`` qualified to ``PHASE::WS``;
4. ``environment``: the disk and git (left out with ``check_filesystem=False``);
5. graph checks (cycles, shared worktree folders), then assembly here.

Only when nothing is wrong are the frozen ``model`` objects built. Problems
come back sorted by position (``LoadResult``); nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import PlanError, PlanProblem
from .argv import resolve_tools
from .around import check_notify, notify_spec, resolve_port_range
from .dependencies import Dependencies
from .environment import Environment
from .files import FileReadError, read_regular_file
from .merge import defaults_settings, merge_settings
from .model import Phase, Plan, Price, ToolSpec, Workstream, landing_branch
from .problems import Problems
from .resolve import Resolver, default_worktree_root, to_budget
from .shapes import Shapes, WorkstreamDraft, read_shapes


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

    ``check_filesystem=False`` leaves out the ``environment`` pass, every look
    at the disk and at git (repos, branches, prompt files): paths are still
    expanded and made absolute. ``environ`` replaces ``os.environ`` for
    ``$VARS`` in paths.
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
    path = Path(os.path.abspath(Path(path)))
    problems = Problems(path)
    shapes = read_shapes(text, problems)
    plan = None
    if shapes is not None:
        plan = _load(shapes, problems, check_filesystem, os.environ if environ is None else environ)
    found = problems.sorted()
    return LoadResult(plan if not found else None, found)


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


def _load(
    shapes: Shapes, problems: Problems, check_filesystem: bool, environ: Mapping[str, str]
) -> Plan | None:
    """The passes after the first, over ``shapes``; the plan when nothing is wrong."""
    folder = problems.path.parent
    tools, broken_tools = resolve_tools(problems, shapes.tools)
    broken_tools |= shapes.broken_tools
    resolver = Resolver(problems, shapes, tools, broken_tools, folder, environ)
    dependencies = Dependencies(problems, shapes.phases)
    drafts = [(phase, draft) for phase in shapes.phases for draft in phase.workstreams]
    defaults = defaults_settings(shapes.defaults)
    for phase, draft in drafts:
        draft.settings = merge_settings(defaults, draft.raw, draft.path)
        resolver.resolve(phase, draft)
        dependencies.resolve(phase, draft)
    if check_filesystem:
        environment = Environment(problems, folder)
        for _, draft in drafts:
            environment.check(draft)
    roots: dict[Path, Path] = {}
    for _, draft in drafts:
        default_worktree_root(draft, roots)
    dependencies.check_cycles()
    dependencies.check_folders()
    _check_landed_bases(shapes, problems)
    port_range = resolve_port_range(problems, shapes.plan.port_range)
    if shapes.plan.notify is not None:
        check_notify(problems, shapes.plan.notify, ("notify",))
    if problems:
        return None
    return _assemble(shapes, problems, tools, port_range)


def _starts_landed(draft: WorkstreamDraft) -> bool:
    return str(draft.kwargs.get("base", "")) == "landed"


def _check_landed_bases(shapes: Shapes, problems: Problems) -> None:
    """``base: landed`` needs a phase before it, whose landing branch it starts from."""
    if not shapes.phases:
        return
    for draft in shapes.phases[0].workstreams:
        if _starts_landed(draft):
            where = draft.settings.get("base", (None, draft.path))[1]
            problems.add(
                where,
                "`base: landed` starts from the landing branch of the phase before,"
                " and this is the first phase",
                "use `base: deps` here, or move the workstream to a later phase",
            )


def _assemble(
    shapes: Shapes, problems: Problems, tools: dict[str, ToolSpec], port_range: tuple[int, int]
) -> Plan | None:
    phases: list[Phase] = []
    previous: str | None = None
    for phase in shapes.phases:
        raw = phase.raw
        if raw is None or phase.id is None:  # pragma: no cover - reported before
            return None
        workstreams: list[Workstream] = []
        for draft in phase.workstreams:
            if previous is not None and _starts_landed(draft):
                draft.kwargs["landed_from"] = landing_branch(previous)
            try:
                workstreams.append(Workstream(**draft.kwargs))
            except ValidationError as exc:  # pragma: no cover - the schema checks first
                problems.add(draft.path, f"invalid workstream ({exc.errors()[0]['msg']})")
                return None
        phases.append(
            Phase(
                id=phase.id,
                name=raw.name if raw.name is not None else phase.id,
                max_parallel_workstreams=raw.max_parallel_workstreams,
                land_auto=raw.land == "auto",
                workstreams=workstreams,
                line=problems.doc.pos(phase.path)[0],
            )
        )
        previous = phase.id
    raw_plan = shapes.plan
    extra: dict[str, Any] = {}
    if raw_plan.grace_seconds is not None:
        extra["grace_seconds"] = raw_plan.grace_seconds
    if raw_plan.notify is not None:
        extra["notify"] = notify_spec(raw_plan.notify)
    if raw_plan.budget is not None:
        extra["budget"] = to_budget(raw_plan.budget)
    if raw_plan.pricing:
        extra["pricing"] = {
            model: Price(input=row.input, output=row.output, cached=row.cached)
            for model, row in raw_plan.pricing.items()
        }
    return Plan(
        path=problems.path,
        name=raw_plan.name if raw_plan.name is not None else problems.path.stem,
        version=1,
        phases=phases,
        tools=tools,
        port_range=port_range,
        **extra,
    )
