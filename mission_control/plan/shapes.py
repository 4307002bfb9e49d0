"""The first pass: the plan's YAML checked one mapping at a time against the ``schema``.

The text is composed once (``yaml_nodes``: syntax, duplicate keys, aliases);
then the plan, ``defaults:``, each tool, each phase and each workstream are
validated on their own, so a typo in one workstream does not hide a problem
in the next; a key that fails is dropped and the rest of its mapping is still
checked. Ids are checked here too, where each is written, since every later
pass refers to workstreams by id. What comes out are drafts: the raw models
with where each was written, for the passes that merge and resolve them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .ids import id_problem, suggest_id
from .problems import Problems, describe, short
from .schema import (
    RESERVED_RESOURCES,
    RawDefaults,
    RawPhase,
    RawPlan,
    RawTool,
    RawWorkstream,
)
from .yaml_nodes import KeyPath, Pos, parse_document


@dataclass(slots=True)
class WorkstreamDraft:
    """One workstream on its way from the file to a ``Workstream``."""

    phase_index: int
    phase_id: str | None
    path: KeyPath
    raw: RawWorkstream
    broken: set[str]
    """Keys whose values failed the schema (reported already)."""
    settings: dict[str, tuple[Any, KeyPath]] = field(default_factory=dict)
    """The merged settings (``merge``): value and where it was written."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """The ``Workstream`` fields resolved so far."""
    ok: bool = True

    @property
    def id(self) -> str:
        return self.raw.id

    def fail(
        self,
        problems: Problems,
        path: KeyPath,
        message: str,
        hint: str = "",
        *,
        at: Pos | None = None,
    ) -> None:
        """Report a problem that keeps this workstream from being built."""
        self.ok = False
        problems.add(path, message, hint, at=at)


@dataclass(slots=True)
class PhaseDraft:
    index: int
    path: KeyPath
    id: str | None
    raw: RawPhase | None
    workstreams: list[WorkstreamDraft] = field(default_factory=list)
    ids: dict[str, KeyPath] = field(default_factory=dict)
    """Every usable workstream id of the phase, where it was written."""
    written: set[str] = field(default_factory=set)
    """Every workstream id written in the phase, usable or not."""


@dataclass(slots=True)
class Shapes:
    """The plan as written, each part valid on its own."""

    plan: RawPlan
    defaults: RawDefaults = field(default_factory=RawDefaults)
    defaults_broken: set[str] = field(default_factory=set)
    """Keys of ``defaults:`` that failed (reported once there, not on each workstream)."""
    tools: dict[str, RawTool] = field(default_factory=dict)
    """The plan's own tools whose shape is right (their argv is looked at later)."""
    broken_tools: set[str] = field(default_factory=set)
    phases: list[PhaseDraft] = field(default_factory=list)


def read_shapes(text: str, problems: Problems) -> Shapes | None:
    """Compose and check ``text``; ``None`` when there is no plan to go on with."""
    doc, issues = parse_document(text)
    if doc is not None:
        problems.doc = doc
    for issue in issues:
        problems.add(issue.path, issue.message, issue.hint, at=issue.pos)
        problems.yaml_issues.add(issue.path)
    if doc is None:
        return None
    data = doc.data
    if data is None:
        problems.add(
            (),
            "the plan is empty",
            "start with `version: 1` and `phases:` (see sample_plans/ for examples)",
        )
        return None
    if not isinstance(data, dict):
        problems.add(
            (),
            f"the plan must be a mapping (version, defaults, tools, phases), not {describe(data)}",
            "start the file with `phases:` at the left margin",
        )
        return None
    # Top-level `x-...` keys hold YAML anchors for reuse (as in docker compose).
    data = {k: v for k, v in data.items() if not k.startswith("x-")}
    raw_plan, _ = problems.validate(RawPlan, data, (), "plan")
    if raw_plan is None:  # pragma: no cover - RawPlan has no required key
        return None
    reader = _Reader(problems, Shapes(raw_plan))
    reader.read_defaults()
    reader.read_tools()
    reader.read_phases(data)
    return reader.shapes


def _env_as_text(problems: Problems, data: dict[str, Any], path: KeyPath) -> dict[str, Any]:
    """Environment values as written (``PORT: 08`` stays "08", ``X: yes`` stays "yes")."""
    env = data.get("env")
    if not isinstance(env, dict):
        return data
    texts = problems.doc.texts
    converted = {
        key: texts.get((*path, "env", key), value)
        if isinstance(value, bool | int | float)
        else value
        for key, value in env.items()
    }
    return {**data, "env": converted}


def _scalar(value: object) -> bool:
    return isinstance(value, bool | int | float)


def check_env_keys(problems: Problems, env: Mapping[str, str] | None, path: KeyPath) -> None:
    for key in env or {}:
        if not key or "=" in key or "\0" in key:
            problems.add(
                (*path, "env", key),
                f"{key!r} cannot be an environment variable name",
                "use letters, digits and '_', e.g. API_KEY",
                at=problems.doc.key_pos((*path, "env", key)),
            )


class _Reader:
    def __init__(self, problems: Problems, shapes: Shapes) -> None:
        self.problems = problems
        self.shapes = shapes

    def read_defaults(self) -> None:
        raw_plan = self.shapes.plan
        if "defaults" not in raw_plan.model_fields_set:
            return
        path: KeyPath = ("defaults",)
        data = _env_as_text(self.problems, raw_plan.defaults, path)
        self._check_resource_names(data, path)
        defaults, broken = self.problems.validate(RawDefaults, data, path, "defaults")
        if defaults is not None:
            self.shapes.defaults = defaults
            check_env_keys(self.problems, defaults.env, path)
        self.shapes.defaults_broken = broken | (set(data) if defaults is None else set())

    def read_tools(self) -> None:
        for name, data in self.shapes.plan.tools.items():
            path: KeyPath = ("tools", name)
            if not name.strip() or any(ch.isspace() for ch in name) or "{" in name:
                self.problems.add(
                    path,
                    f"tool name {name!r} cannot hold spaces or braces",
                    "name it like a command: my-agent",
                    at=self.problems.doc.key_pos(path),
                )
            if not isinstance(data, dict):
                self.problems.add(
                    path,
                    f"a tool must be a mapping with `argv:`, not {describe(data)}",
                    "write argv: [my-agent, --message-file, '{prompt_file}']",
                )
                self.shapes.broken_tools.add(name)
                continue
            data = _env_as_text(self.problems, data, path)
            raw, broken = self.problems.validate(RawTool, data, path, "tool")
            if raw is None or "argv" in broken:
                self.shapes.broken_tools.add(name)
            else:
                self.shapes.tools[name] = raw

    def read_phases(self, data: dict[str, Any]) -> None:
        phases = self.shapes.plan.phases
        if phases is None:
            if "phases" not in data:
                self.problems.add(
                    (), "missing required key 'phases'", "add `phases:` with at least one phase"
                )
            return
        if not phases:
            self.problems.add(
                ("phases",), "the plan has no phases", "add at least one phase under `phases:`"
            )
            return
        seen: dict[str, KeyPath] = {}
        folded: dict[str, tuple[str, KeyPath]] = {}
        for index, item in enumerate(phases):
            path: KeyPath = ("phases", index)
            if not isinstance(item, dict):
                self.problems.add(
                    path,
                    "a phase must be a mapping (id, name, max_parallel_workstreams,"
                    f" workstreams), not {describe(item)}",
                    "write `- id: PH-01` and indent the phase's keys under it",
                )
                continue
            raw, _ = self.problems.validate(RawPhase, item, path, "phase")
            phase_id = raw.id if raw is not None else None
            if raw is None and isinstance(item.get("id"), str):
                phase_id = item["id"]
            draft = PhaseDraft(index, path, None, raw)
            if phase_id is not None and self._check_id(phase_id, (*path, "id"), "phase"):
                draft.id = self._unique_phase_id(phase_id, (*path, "id"), seen, folded)
            self.shapes.phases.append(draft)
            workstreams = item.get("workstreams")
            if "workstreams" not in item:
                continue  # reported as missing by the schema
            if not isinstance(workstreams, list):
                continue  # reported as a type error by the schema
            if not workstreams:
                self.problems.add(
                    (*path, "workstreams"),
                    "the phase has no workstreams",
                    "add at least one workstream, or remove the phase",
                )
                continue
            self._read_workstreams(draft, workstreams)

    def _unique_phase_id(
        self,
        phase_id: str,
        path: KeyPath,
        seen: dict[str, KeyPath],
        folded: dict[str, tuple[str, KeyPath]],
    ) -> str | None:
        if phase_id in seen:
            self.problems.add(
                path,
                f"duplicate phase id '{phase_id}'"
                f" (first at line {self.problems.doc.pos(seen[phase_id])[0]})",
                "give every phase its own id",
            )
            return None
        if phase_id.casefold() in folded:
            other, other_path = folded[phase_id.casefold()]
            self.problems.add(
                path,
                f"phase id '{phase_id}' differs from '{other}'"
                f" (line {self.problems.doc.pos(other_path)[0]}) only in case",
                "their branches and folders would collide on Windows and macOS: rename one",
            )
            return None
        seen[phase_id] = path
        folded[phase_id.casefold()] = (phase_id, path)
        return phase_id

    def _read_workstreams(self, phase: PhaseDraft, items: list[Any]) -> None:
        folded: dict[str, str] = {}
        for index, item in enumerate(items):
            path: KeyPath = (*phase.path, "workstreams", index)
            if not isinstance(item, dict):
                self.problems.add(
                    path,
                    f"a workstream must be a mapping (id, name, tool, ...), not {describe(item)}",
                    "write `- id: WS-01` and indent the workstream's keys under it",
                )
                continue
            ident = item.get("id")
            usable = False
            if isinstance(ident, str):
                phase.written.add(ident)
                if self._check_id(ident, (*path, "id"), "workstream"):
                    usable = self._unique_workstream_id(phase, ident, (*path, "id"), folded)
            self._check_resource_names(item, path)
            raw, broken = self.problems.validate(
                RawWorkstream, _env_as_text(self.problems, item, path), path, "workstream"
            )
            if raw is None:
                continue
            check_env_keys(self.problems, raw.env, path)
            ok = usable and phase.id is not None
            phase.workstreams.append(
                WorkstreamDraft(phase.index, phase.id, path, raw, broken, ok=ok)
            )

    def _unique_workstream_id(
        self, phase: PhaseDraft, ident: str, path: KeyPath, folded: dict[str, str]
    ) -> bool:
        if ident in phase.ids:
            first = self.problems.doc.pos(phase.ids[ident])[0]
            self.problems.add(
                path,
                f"duplicate workstream id '{ident}' in phase"
                f" {phase.id or phase.index} (first at line {first})",
                "ids must be unique within a phase",
            )
            return False
        if ident.casefold() in folded:
            other = folded[ident.casefold()]
            self.problems.add(
                path,
                f"workstream id '{ident}' differs from '{other}'"
                f" (line {self.problems.doc.pos(phase.ids[other])[0]}) only in case",
                "their branches and folders would collide on Windows and macOS: rename one",
            )
            return False
        phase.ids[ident] = path
        folded[ident.casefold()] = ident
        return True

    def _check_id(self, value: str, path: KeyPath, what: str) -> bool:
        reason = id_problem(value)
        if reason is None:
            return True
        self.problems.add(
            path,
            f"{what} id {short(value)!r} cannot be used in a branch or folder name: it {reason}",
            f"use letters, digits, '-', '_' and '.', e.g. '{suggest_id(value)}'",
        )
        return False

    def _check_resource_names(self, data: Mapping[str, Any], path: KeyPath) -> None:
        """Custom resource names as Ray takes them: no blanks, none of Ray's own names.

        Read from the mapping as written, so a bad amount next to a name hides neither.
        """
        resources = data.get("resources")
        custom = resources.get("custom") if isinstance(resources, dict) else None
        for name in custom if isinstance(custom, dict) else {}:
            key_path: KeyPath = (*path, "resources", "custom", name)
            at = self.problems.doc.key_pos(key_path)
            if not name.strip() or any(ch.isspace() for ch in name):
                self.problems.add(
                    key_path,
                    f"custom resource name {name!r} cannot be empty or hold spaces",
                    "name it as the nodes advertise it, e.g. gpu_box",
                    at=at,
                )
            elif name in RESERVED_RESOURCES:
                self.problems.add(
                    key_path,
                    f"'{name}' cannot be a custom resource (Ray reserves the name)",
                    RESERVED_RESOURCES[name],
                    at=at,
                )
