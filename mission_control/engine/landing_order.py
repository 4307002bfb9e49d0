"""What a landing takes and in which order: the succeeded workstreams of a phase or run,
their dependencies first, ties in plan order, and where the landing works.

Pure reading (the ledger, the plan, refs); nothing here merges. ``land`` and
``--dry-run`` both start from the ``LandingScope`` this module makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..engine.states import WsState
from ..errors import SetupError
from ..git import conflicts
from ..git.repo import ref_exists
from ..plan.model import Check, Plan, Workstream
from ..store.logs import run_dir
from ..store.runs import RunStore
from .landing_processes import landing_checks


@dataclass(frozen=True, slots=True)
class LandingScope:
    """The branches one landing merges, in order, and where it works."""

    run_id: str
    scope: str
    """The phase id, or empty for the whole run."""
    into: str
    """The integration branch."""
    into_given: bool
    """``--into`` named it (then an existing branch is built on)."""
    order: tuple[Workstream, ...]
    left_out: tuple[tuple[str, str], ...]
    """(task id, state) of the workstreams in scope that did not succeed."""
    checks: tuple[Check, ...]
    worktree: Path
    log_path: Path
    lock_path: Path
    pr_urls: dict[str, str]
    """The workstreams' own pull requests, by task id."""

    @property
    def first(self) -> Workstream:
        return self.order[0]

    @property
    def repo(self) -> Path:
        return self.first.repo

    @property
    def remote(self) -> str:
        return self.first.remote

    @property
    def base_branch(self) -> str:
        return self.first.base_branch

    @property
    def push(self) -> bool:
        """The plan pushes these branches (``push:``), so the landing pushes too."""
        return all(ws.push for ws in self.order)

    @property
    def pull_request(self) -> bool:
        """The plan opens pull requests for these branches (``pr:`` not false)."""
        return all(ws.pr.enabled is not False for ws in self.order)

    @property
    def what(self) -> str:
        return f"phase {self.scope}" if self.scope else "the whole run"


def landing_scope(
    plan: Plan,
    store: RunStore,
    run_id: str,
    *,
    phase_id: str | None,
    into: str | None,
    state_dir: Path,
) -> LandingScope:
    """The landing of ``phase_id`` (None: every phase) of run ``run_id``."""
    if phase_id is not None and phase_id not in {p.id for p in plan.phases}:
        known = ", ".join(p.id for p in plan.phases)
        raise SetupError(f"{plan.path}: no phase '{phase_id}' — phases in this plan: {known}")
    records = [r for r in store.workstreams(run_id) if phase_id is None or r.phase_id == phase_id]
    chosen: list[Workstream] = []
    left_out: list[tuple[str, str]] = []
    pr_urls: dict[str, str] = {}
    for record in records:
        if record.state is not WsState.SUCCEEDED:
            left_out.append((record.task_id, record.state.value))
            continue
        try:
            ws = plan.workstream(record.task_id)
        except KeyError:
            raise SetupError(
                f"{plan.path}: workstream {record.task_id} of run {run_id} is no longer in the"
                " plan — put it back, or land another run"
            ) from None
        chosen.append(ws)
        if record.pr_url:
            pr_urls[ws.task_id] = record.pr_url
    what = f"phase {phase_id}" if phase_id else "the run"
    if not chosen:
        raise SetupError(
            f"nothing to land: no workstream of {what} succeeded in run {run_id}"
            " — run it (`mission-control status` shows the states), then land it"
        )
    _same_target(chosen)
    scope = phase_id or ""
    name = into or f"mc/land/{phase_id or run_id}"
    folder = run_dir(state_dir, run_id) / "land"
    stem = name.replace("/", "-")
    return LandingScope(
        run_id=run_id,
        scope=scope,
        into=name,
        into_given=into is not None,
        order=tuple(dependency_order(chosen)),
        left_out=tuple(left_out),
        checks=tuple(landing_checks(chosen)),
        worktree=folder / stem,
        log_path=folder / f"{stem}.log",
        lock_path=folder / f"{stem}.lock",
        pr_urls=pr_urls,
    )


def _same_target(chosen: list[Workstream]) -> None:
    first = chosen[0]
    for ws in chosen[1:]:
        if (ws.repo, ws.base_branch, ws.remote) != (first.repo, first.base_branch, first.remote):
            raise SetupError(
                f"{ws.task_id} lands in {ws.repo} on {ws.base_branch}, {first.task_id} in"
                f" {first.repo} on {first.base_branch}: one landing merges into one branch of"
                " one repository — land each phase on its own (`--phase`)"
            )


def dependency_order(chosen: list[Workstream]) -> list[Workstream]:
    """Dependencies before dependents; among those ready, plan order."""
    waiting = list(chosen)
    inside = {ws.task_id for ws in chosen}
    placed: set[str] = set()
    order: list[Workstream] = []
    while waiting:
        for ws in waiting:
            if all(dep in placed or dep not in inside for dep in ws.depends_on):
                order.append(ws)
                placed.add(ws.task_id)
                waiting.remove(ws)
                break
        else:  # the plan's DAG has no cycles; this only guards a plan changed by hand
            order.extend(waiting)
            break
    return order


def branch_ref(ws: Workstream) -> str:
    """The ref of the workstream's branch: the local one, else the remote's copy."""
    for ref in (f"refs/heads/{ws.branch}", f"refs/remotes/{ws.remote}/{ws.branch}"):
        if ref_exists(ws.repo, ref):
            return ref
    raise SetupError(
        f"{ws.repo}: the branch {ws.branch} of {ws.task_id} is gone (nor on '{ws.remote}')"
        " — fetch it, or retry the workstream, then land again"
    )


def expected_conflicts(
    scope: LandingScope, base_ref: str
) -> dict[str, list[tuple[str, list[str]]]]:
    """The forecast, per task id: (task id or ``base:BRANCH``, files) it would conflict with."""
    by_ref = {branch_ref(ws): ws.task_id for ws in scope.order}
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for ws in scope.order:
        ref = branch_ref(ws)
        others = [r for r in by_ref if r != ref]
        result = conflicts.forecast(ws.repo, ref, others, base_ref)
        found[ws.task_id] = [
            (by_ref.get(other, f"base:{scope.base_branch}"), files)
            for other, files in result.conflicts
        ]
    return found
