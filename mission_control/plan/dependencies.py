"""Dependencies between workstreams: ``WS`` and ``PHASE::WS`` resolved, the graph checked.

``depends_on`` names a workstream of the same phase by its bare id, or one of
an earlier phase as ``PHASE::WS``; each becomes the qualified id. What a
person most likely meant is told for each one that does not resolve (a typo,
a missing phase prefix, a later phase). Then the whole plan: cycles in a
phase (``dag.find_cycles``) and ids that would share a worktree folder. Ids
are indexed once, so resolving stays linear in the size of the plan.
"""

from __future__ import annotations

from .dag import find_cycles
from .problems import Problems, close
from .shapes import PhaseDraft, WorkstreamDraft
from .yaml_nodes import KeyPath

_LATER_HINT = "phases run in order: move one of the two workstreams so the dependency comes first"
_SHAPE_HINT = (
    "write WS-ID for a workstream of this phase, or PHASE::WS-ID for one of an earlier phase"
)


class Dependencies:
    def __init__(self, problems: Problems, phases: list[PhaseDraft]) -> None:
        self.problems = problems
        self.phases = phases
        self._by_id = {p.id: p for p in phases if p.id is not None}
        self._holders: dict[str, list[PhaseDraft]] = {}
        """Workstream id -> the phases (with an id) that have it, in order."""
        for phase in self._by_id.values():
            for ws_id in phase.ids:
                self._holders.setdefault(ws_id, []).append(phase)
        self._qualified: list[str] | None = None

    def resolve(self, phase: PhaseDraft, draft: WorkstreamDraft) -> None:
        """Qualify the draft's ``depends_on``; an unresolved one fails the draft."""
        if phase.id is None:
            draft.ok = False
            return
        qualified: list[str] = []
        for k, dep in enumerate(draft.raw.depends_on):
            target = self._dependency(phase, draft.raw.id, dep, (*draft.path, "depends_on", k))
            if target is None:
                draft.ok = False
            elif target not in qualified:
                qualified.append(target)
        draft.kwargs["depends_on"] = qualified

    def _dependency(self, phase: PhaseDraft, own: str, dep: str, path: KeyPath) -> str | None:
        if "::" not in dep:
            return self._in_phase(phase, own, dep, dep, path)
        phase_part, _, ws_part = dep.partition("::")
        if not phase_part or not ws_part or "::" in ws_part:
            self.problems.add(path, f"{dep!r} is not a workstream id", _SHAPE_HINT)
            return None
        target = self._by_id.get(phase_part)
        if target is not None and ws_part in target.written and ws_part not in target.ids:
            return None  # its id is reported as unusable already
        if target is None or ws_part not in target.ids:
            suggestion = close(dep, self._all_qualified())
            hint = f"did you mean '{suggestion}'?" if suggestion else _SHAPE_HINT
            self.problems.add(path, f"unknown dependency '{dep}'", hint)
            return None
        if target.index > phase.index:
            self.problems.add(path, f"depends on '{dep}', which is in a later phase", _LATER_HINT)
            return None
        if target is not phase:
            return dep
        return self._in_phase(phase, own, ws_part, dep, path)

    def _in_phase(
        self, phase: PhaseDraft, own: str, ws_id: str, dep: str, path: KeyPath
    ) -> str | None:
        if not ws_id:
            self.problems.add(path, "an empty dependency", _SHAPE_HINT)
            return None
        if ws_id == own:
            self.problems.add(
                path, f"'{own}' depends on itself", f"remove '{dep}' from its depends_on"
            )
            return None
        if ws_id in phase.ids:
            return f"{phase.id}::{ws_id}"
        if ws_id in phase.written:
            return None  # its id is reported as unusable already
        other = next((p for p in self._holders.get(ws_id, []) if p is not phase), None)
        if other is None:
            suggestion = close(ws_id, [i for i in phase.ids if i != own])
            hint = (
                f"did you mean '{suggestion}'?"
                if suggestion
                else "ids in this phase: " + ", ".join(phase.ids)
            )
            self.problems.add(path, f"unknown dependency '{dep}'", hint)
        elif other.index < phase.index:
            self.problems.add(
                path,
                f"unknown dependency '{dep}' in phase {phase.id}",
                f"it is in phase {other.id}: write '{other.id}::{ws_id}'",
            )
        else:
            self.problems.add(
                path,
                f"depends on '{other.id}::{ws_id}', which is in a later phase",
                _LATER_HINT,
            )
        return None

    def _all_qualified(self) -> list[str]:
        if self._qualified is None:
            self._qualified = [f"{p.id}::{w}" for p in self._by_id.values() for w in p.ids]
        return self._qualified

    # ------------------------------------------------------------ whole-plan checks

    def check_cycles(self) -> None:
        for phase in self.phases:
            if phase.id is None:
                continue
            prefix = f"{phase.id}::"
            graph: dict[str, list[str]] = {}
            drafts: dict[str, WorkstreamDraft] = {}
            for draft in phase.workstreams:
                if draft.id in graph or draft.id not in phase.ids:
                    continue
                deps = draft.kwargs.get("depends_on", [])
                graph[draft.id] = [d[len(prefix) :] for d in deps if d.startswith(prefix)]
                drafts[draft.id] = draft
            for cycle in find_cycles(graph):
                self.problems.add(
                    (*drafts[cycle[0]].path, "depends_on"),
                    "dependency cycle: " + " -> ".join(cycle),
                    "each arrow reads 'depends on': remove one of these dependencies",
                )
                members = set(cycle)
                for draft in phase.workstreams:
                    if draft.id in members:
                        draft.ok = False

    def check_folders(self) -> None:
        """``PH-1`` + ``A`` and ``PH`` + ``1-A`` would share the folder ``PH-1-A``."""
        seen: dict[tuple[str, str], str] = {}
        for phase in self.phases:
            for draft in phase.workstreams:
                root = draft.kwargs.get("worktree_root")
                if phase.id is None or root is None:
                    continue
                folder = f"{phase.id}-{draft.id}"
                key = (str(root).casefold(), folder.casefold())
                task_id = f"{phase.id}::{draft.id}"
                if key in seen and seen[key] != task_id:
                    draft.fail(
                        self.problems,
                        (*draft.path, "id"),
                        f"{task_id} and {seen[key]} would share the worktree folder {folder}",
                        "rename one of them",
                    )
                else:
                    seen.setdefault(key, task_id)
