"""Landing a phase: merge its succeeded branches, in dependency order, into one
integration branch, with the plan's checks, then push it and open its pull request.

Why it has this shape:

* The ledger row of each branch (``store.landings``) moves ``pending`` ->
  ``merging`` -> ``merged`` (checks due) -> ``landed``, or stops at
  ``conflicted`` / ``check_failed``. ``merging`` is written, with the commit the
  worktree held and the commit to merge, *before* git merges. A landing killed
  anywhere is settled from that row and git alone (``_settle``): a merge that was
  committed is kept and recorded, anything half-done is undone, so a rerun never
  loses a merge and never makes one twice (every merge is ``--no-ff`` and a
  commit already held is never merged again).
* A stop leaves what merged before it on the integration branch. A conflict is
  left in place in the landing's worktree: a resolving tool (``--resolve``) or
  the user resolves it there; a rerun commits a resolution it finds, or undoes
  the merge and tries again. A failed check undoes its merge, so the branch only
  ever holds merges that passed.
* Steps are reported as they end (``LandingStep``) to one callback: the command
  prints them as lines or JSON. Everything here blocks; nothing touches the
  user's checkout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .. import crashpoints
from ..errors import GitError, SetupError
from ..git import landing as git_landing
from ..git.prepare import start_point_for
from ..git.remotes import fetch_branch, has_remote
from ..git.repo import head_commit, is_ancestor, is_dirty, rev_parse
from ..plan.model import Plan, Workstream, landing_branch
from ..store.private import make_private_dir, open_private
from ..store.runs import RunStore
from .landing_delivery import deliver
from .landing_order import LandingScope, branch_ref, landing_scope
from .landing_processes import ProcessEnd, run_check
from .landing_resolve import run_resolver
from .landing_steps import (
    CHECK_FAILED,
    CONFLICTED,
    HELD,
    IN_FLIGHT,
    LANDED,
    MERGED,
    MERGING,
    PENDING,
    RESOLVING,
    LandingRequest,
    LandingResult,
    LandingRun,
    LandingStep,
    LandingStopped,
    Report,
    landed_tasks,
)

__all__ = [
    "LandingRequest",
    "LandingResult",
    "LandingStep",
    "land",
    "land_phase",
    "landed_phases",
    "start_point",
]


def land_phase(
    plan: Plan, store: RunStore, run_id: str, phase_id: str, state_dir: Path, report: Report
) -> tuple[bool, str]:
    """Land a ``land: auto`` phase into its default branch, checks after each merge."""
    scope = landing_scope(plan, store, run_id, phase_id=phase_id, into=None, state_dir=state_dir)
    result = land(LandingRequest(plan, scope), store, report)
    return result.ok, result.detail


def landed_phases(plan: Plan, store: RunStore, run_id: str) -> set[str]:
    """The ``land: auto`` phases of ``plan`` that run ``run_id`` has landed."""
    found = set()
    for phase in plan.phases:
        if phase.land_auto:
            landing = store.find_landing(run_id, phase.id, landing_branch(phase.id))
            if landing is not None and landing.status == "landed":
                found.add(phase.id)
    return found


def start_point(scope: LandingScope, *, detached: bool = False) -> tuple[str, str]:
    """Where a new integration branch starts: the base, fetched now (ref, commit).

    ``--into`` an existing branch builds on that branch as it is: on the remote's copy,
    fetched now, when the branch is checked out elsewhere (``detached``).
    """
    if scope.into_given:
        if detached and fetch_branch(scope.repo, scope.remote, scope.into, max_age=0.0):
            tracking = f"refs/remotes/{scope.remote}/{scope.into}"
            commit = rev_parse(scope.repo, tracking)
            if commit:
                return tracking, commit
        existing = rev_parse(scope.repo, f"refs/heads/{scope.into}")
        if existing:
            return f"refs/heads/{scope.into}", existing
    warnings: list[str] = []
    ref, commit = start_point_for(scope.repo, scope.first, warnings)
    commit = commit or rev_parse(scope.repo, ref)
    if commit is None:
        raise GitError(f"{scope.repo}: {ref} names no commit — fetch the base, then land again")
    return ref, commit


def land(request: LandingRequest, store: RunStore, report: Report) -> LandingResult:
    """Land ``request.scope``; a stop is a result (``ok`` False), never an exception."""
    scope = request.scope
    replaced: str | None = None
    with _landing_lock(scope):
        detached = _detached(scope)
        found = store.find_landing(scope.run_id, scope.scope, scope.into)
        if found is not None:
            base_ref, base_commit = found.base_ref, found.base_commit
        else:
            if not scope.into_given and rev_parse(scope.repo, f"refs/heads/{scope.into}"):
                replaced = _start_over(scope, store, report)
            base_ref, base_commit = start_point(scope, detached=detached)
        git_landing.open_integration_worktree(
            scope.repo, scope.worktree, scope.into, base_commit, detached=detached
        )
        landing_id = store.start_landing(
            scope.run_id,
            scope.scope,
            scope.into,
            repo=str(scope.repo),
            worktree=str(scope.worktree),
            base_ref=base_ref,
            base_commit=base_commit,
            checks_mode=request.checks,
            branches=[(ws.task_id, ws.branch) for ws in scope.order],
            replaced=replaced,
        )
        run = LandingRun(request, store, report, landing_id, detached)
        run.rows = {r.task_id: r for r in store.landing_merges(landing_id)}
        try:
            _settle(run)
            for ws in scope.order:
                _land_one(run, ws)
            if request.checks == "end":
                _run_checks(run, None, undo_to=None)
            result = deliver(run, base_ref)
        except LandingStopped as stop:
            head = head_commit(scope.worktree)
            store.record_landing(landing_id, "stopped", stop.text, head_commit=head)
            report(LandingStep("stopped", False, stop.text, task_id=stop.task_id))
            return LandingResult(False, stop.text, head, landed=landed_tasks(run))
        return result


def _start_over(scope: LandingScope, store: RunStore, report: Report) -> str:
    """The default branch holds an earlier run's landing: keep its tip, start it over."""
    earlier = store.latest_landing_into(str(scope.repo), scope.into)
    if earlier is None or earlier.run_id == scope.run_id:
        raise SetupError(
            f"{scope.repo}: the branch {scope.into} exists and no landing of run"
            f" {scope.run_id} made it — delete it (`git branch -D {scope.into}`), or"
            " land into another branch (`--into NAME`)"
        )
    tip = git_landing.retire_branch(scope.repo, scope.into, earlier.run_id, Path(earlier.worktree))
    kept = f"{git_landing.OLD_REF_PREFIX}{scope.into}/{earlier.run_id}"
    text = f"{scope.into} held the landing of run {earlier.run_id}: kept as {kept}, started over"
    report(LandingStep("start", True, text, branch=scope.into, commit=tip))
    return tip


def _detached(scope: LandingScope) -> bool:
    """``--into`` a branch checked out elsewhere: land on a detached HEAD, push to the remote."""
    if not scope.into_given:
        return False
    elsewhere = git_landing.checked_out_elsewhere(scope.repo, scope.into, scope.worktree)
    if elsewhere is None:
        return False
    if not scope.push or not has_remote(scope.repo, scope.remote):
        raise SetupError(
            f"{scope.repo}: {scope.into} is checked out in {elsewhere}, which a landing never"
            f" changes, and there is no remote to land it on (no '{scope.remote}', or"
            " `push: false`) — land into another branch (the default mc/land/...) and merge it"
            " yourself"
        )
    return True


@contextlib.contextmanager
def _landing_lock(scope: LandingScope) -> Iterator[None]:
    """One ``land`` at a time per integration branch of a run."""
    make_private_dir(scope.lock_path.parent)
    fd = open_private(scope.lock_path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SetupError(
                f"another `mission-control land` is landing {scope.into} of run"
                f" {scope.run_id}: wait for it to end"
            ) from None
        yield
    finally:
        os.close(fd)


def _message(ws: Workstream, into: str) -> str:
    return f"Land {ws.task_id}: {ws.name}\n\nMerge {ws.branch} into {into} (mission-control land)."


def _settle(run: LandingRun) -> None:
    """Finish or undo the merge an earlier landing left under way (a stop or a kill)."""
    path = run.path
    for row in run.rows.values():
        if row.state not in IN_FLIGHT or row.branch_head is None or row.before is None:
            continue
        in_progress = git_landing.merge_in_progress(path)
        if row.state == CONFLICTED and in_progress == row.branch_head:
            # The user may have resolved it in the worktree since: take that resolution.
            with contextlib.suppress(GitError):
                head = git_landing.commit_resolution(
                    path,
                    row.branch_head,
                    _message(run.request.plan.workstream(row.task_id), run.scope.into),
                    row.files,
                )
                run.record(row.task_id, MERGED, merge_commit=head, detail="resolved by hand")
                continue
        head = head_commit(path)
        if not in_progress and head != row.before and is_ancestor(path, row.branch_head, head):
            # Committed before the landing stopped: keep it, never merge it twice.
            run.record(row.task_id, MERGED, merge_commit=head, detail="merged before a stop")
            continue
        if in_progress or head != row.before or is_dirty(path):
            git_landing.undo_merge(path, row.before)
        run.record(row.task_id, PENDING, detail=f"undone: {row.state} when the landing stopped")


def _land_one(run: LandingRun, ws: Workstream) -> None:
    """Merge one branch (or see it is there already), with its checks; raise to stop."""
    path, into = run.path, run.scope.into
    row = run.rows[ws.task_id]
    commit = rev_parse(ws.repo, branch_ref(ws))
    assert commit is not None
    head = head_commit(path)
    if is_ancestor(path, commit, head):
        if row.state == MERGED:
            if run.request.checks == "each":
                _run_checks(run, ws, undo_to=row.before)
            run.record(ws.task_id, LANDED, detail=row.detail)
            run.say("merge", True, f"{ws.task_id}: landed", ws, commit=row.merge_commit)
        elif row.state not in (LANDED, HELD):
            run.record(ws.task_id, HELD, branch_head=commit, detail=f"already in {into}")
            run.say("merge", True, f"{ws.task_id}: already in {into}", ws, commit=head)
        else:
            run.say("merge", True, f"{ws.task_id}: landed before", ws, commit=row.merge_commit)
        return
    run.record(ws.task_id, MERGING, branch_head=commit, before=head, merge_commit=None, files=[])
    crashpoints.reach("land.merging")
    result = git_landing.merge_commit_into(path, commit, _message(ws, into))
    if result.outcome == "merged":
        crashpoints.reach("land.merged")
        run.record(ws.task_id, MERGED, merge_commit=result.head)
        run.say(
            "merge", True, f"{ws.task_id}: merged {ws.branch} into {into}", ws, commit=result.head
        )
        if run.request.checks == "each":
            _run_checks(run, ws, undo_to=head)
        run.record(ws.task_id, LANDED)
        return
    if result.outcome == "held":
        run.record(ws.task_id, HELD, detail=f"already in {into}")
        return
    files = result.files
    shown = ", ".join(files)
    run.record(ws.task_id, CONFLICTED, files=files, detail=f"conflicts in {shown}")
    run.say(
        "merge",
        False,
        f"{ws.task_id}: merging {ws.branch} into {into} conflicts in {shown}",
        ws,
        files=files,
    )
    if run.request.resolve_tool is not None:
        _resolve(run, ws, commit, head, files)
        return
    raise LandingStopped(
        f"landing of {into} stopped at {ws.task_id}: merging {ws.branch} conflicts in {shown}"
        f" — resolve it in {path} and commit, or fix {ws.branch} (retry {ws.task_id}), then"
        " run land again (or pass --resolve TOOL)",
        ws.task_id,
    )


def _resolve(
    run: LandingRun, ws: Workstream, commit: str, before: str, files: tuple[str, ...]
) -> None:
    tool = run.request.resolve_tool
    assert tool is not None
    run.record(ws.task_id, RESOLVING, files=files, detail=f"{tool} resolving {', '.join(files)}")
    crashpoints.reach("land.resolving")
    end = run_resolver(run.request.plan, tool, run.scope, ws, files, run.env())
    run.say("resolve", end.ok, f"{ws.task_id}: {end.line}", ws, files=files, tail=end.tail)
    why = "" if end.ok else end.line
    if not why:
        marked = git_landing.files_with_markers(run.path, files)
        if marked:
            why = f"{tool} left conflict markers in {', '.join(marked)}"
    if not why and run.request.checks != "none":
        for check in run.scope.checks:
            result = run_check(check, run.path, run.scope.log_path, run.env())
            _report_check(run, ws, result)
            if not result.ok:
                why = f"after {tool}'s resolution, {result.line}"
                break
    if not why:
        try:
            head = git_landing.commit_resolution(
                run.path, commit, _message(ws, run.scope.into), files
            )
        except GitError as err:
            why = str(err)
        else:
            run.record(ws.task_id, LANDED, merge_commit=head, detail=f"resolved by {tool}")
            run.say(
                "merge",
                True,
                f"{ws.task_id}: merged with {tool}'s resolution",
                ws,
                commit=head,
                files=files,
            )
            return
    git_landing.undo_merge(run.path, before)
    run.record(ws.task_id, CONFLICTED, detail=why)
    raise LandingStopped(
        f"landing of {run.scope.into} stopped at {ws.task_id}: merging {ws.branch} conflicts in"
        f" {', '.join(files)} and {why} (the merge was undone; log: {run.scope.log_path})"
        f" — fix {ws.branch}, or resolve by hand, then run land again",
        ws.task_id,
    )


def _run_checks(run: LandingRun, ws: Workstream | None, *, undo_to: str | None) -> None:
    """The checks after a merge (``ws``), or once at the end; a failure stops the landing."""
    for check in run.scope.checks:
        result = run_check(check, run.path, run.scope.log_path, run.env())
        _report_check(run, ws, result)
        if result.ok:
            continue
        if ws is None:
            raise LandingStopped(
                f"landing of {run.scope.into} stopped: {result.line} after every branch merged"
                f" (they stay on {run.scope.into}; log: {run.scope.log_path}) — fix it on the"
                " branch that broke it, then run land again" + _tail_text(result)
            )
        if undo_to is not None:
            git_landing.undo_merge(run.path, undo_to)
        run.record(ws.task_id, CHECK_FAILED, detail=result.line)
        raise LandingStopped(
            f"landing of {run.scope.into} stopped at {ws.task_id}: {result.line} after merging"
            f" {ws.branch} (the merge was undone; log: {run.scope.log_path}) — fix {ws.branch}"
            f" (retry {ws.task_id}), then run land again" + _tail_text(result),
            ws.task_id,
        )


def _report_check(run: LandingRun, ws: Workstream | None, result: ProcessEnd) -> None:
    after = f"after {ws.task_id}: " if ws is not None else "at the end: "
    run.say("check", result.ok, after + result.line, ws, tail=result.tail)


def _tail_text(result: ProcessEnd) -> str:
    if not result.tail:
        return ""
    return "; its last lines:\n" + "\n".join(f"    {line}" for line in result.tail)
