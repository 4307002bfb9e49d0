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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import crashpoints
from ..errors import GitError, SetupError
from ..git import landing as git_landing
from ..git import pull_requests
from ..git.commits import push_branch
from ..git.prepare import start_point_for
from ..git.repo import has_remote, head_commit, is_ancestor, is_dirty, rev_parse
from ..plan.model import Plan, Workstream
from ..store.landings import LandingMergeRecord
from ..store.private import make_private_dir, open_private
from ..store.runs import RunStore
from .landing_order import LandingScope, branch_ref
from .landing_processes import ProcessEnd, run_check
from .landing_resolve import run_resolver

ChecksMode = Literal["each", "end", "none"]

PENDING = "pending"
MERGING = "merging"
MERGED = "merged"
"""Merged; the checks after it have not passed yet."""
LANDED = "landed"
HELD = "held"
"""The integration branch held the branch's head already."""
CONFLICTED = "conflicted"
CHECK_FAILED = "check_failed"
RESOLVING = "resolving"

_IN_FLIGHT = frozenset({MERGING, CONFLICTED, RESOLVING})
"""States a landing stops (or is killed) in with a merge under way in the worktree."""


@dataclass(frozen=True, slots=True)
class LandingStep:
    """One thing a landing did: a merge, a check, a resolution, the push, a pull request."""

    kind: str
    ok: bool
    text: str
    task_id: str | None = None
    branch: str | None = None
    commit: str | None = None
    files: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.kind, "ok": self.ok, "text": self.text}
        for key in ("task_id", "branch", "commit"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.files:
            data["files"] = list(self.files)
        if self.tail:
            data["tail"] = list(self.tail)
        return data


@dataclass(frozen=True, slots=True)
class LandingRequest:
    plan: Plan
    scope: LandingScope
    checks: ChecksMode = "each"
    resolve_tool: str | None = None
    close_prs: bool = False


@dataclass(frozen=True, slots=True)
class LandingResult:
    ok: bool
    detail: str
    head: str | None = None
    pr_url: str | None = None
    landed: tuple[str, ...] = ()


Report = Callable[[LandingStep], None]


class LandingStopped(Exception):
    """The landing stops at a branch (a conflict, a failed check, a failed push)."""

    def __init__(self, text: str, task_id: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.task_id = task_id


@dataclass
class _Landing:
    request: LandingRequest
    store: RunStore
    report: Report
    landing_id: int
    rows: dict[str, LandingMergeRecord] = field(default_factory=dict)

    @property
    def scope(self) -> LandingScope:
        return self.request.scope

    @property
    def path(self) -> Path:
        return self.scope.worktree

    def record(self, task_id: str, state: str, **values: Any) -> None:
        self.store.record_merge(self.landing_id, task_id, state, **values)
        self.rows = {r.task_id: r for r in self.store.landing_merges(self.landing_id)}

    def env(self) -> dict[str, str]:
        return {
            "MC_RUN_ID": self.scope.run_id,
            "MC_LANDING": self.scope.into,
            "MC_WORKTREE": str(self.path),
        }


def start_point(scope: LandingScope) -> tuple[str, str]:
    """Where a new integration branch starts: the base, fetched now (ref, commit).

    ``--into`` an existing branch builds on that branch as it is.
    """
    if scope.into_given:
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
    with _landing_lock(scope):
        found = store.find_landing(scope.run_id, scope.scope, scope.into)
        if found is not None:
            base_ref, base_commit = found.base_ref, found.base_commit
        else:
            if not scope.into_given and rev_parse(scope.repo, f"refs/heads/{scope.into}"):
                raise SetupError(
                    f"{scope.repo}: the branch {scope.into} exists and no landing of run"
                    f" {scope.run_id} made it — delete it (`git branch -D {scope.into}`), or"
                    " land into another branch (`--into NAME`)"
                )
            base_ref, base_commit = start_point(scope)
        git_landing.open_integration_worktree(scope.repo, scope.worktree, scope.into, base_commit)
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
        )
        run = _Landing(request, store, report, landing_id)
        run.rows = {r.task_id: r for r in store.landing_merges(landing_id)}
        try:
            _settle(run)
            for ws in scope.order:
                _land_one(run, ws)
            if request.checks == "end":
                _run_checks(run, None, undo_to=None)
            result = _deliver(run, base_ref)
        except LandingStopped as stop:
            head = head_commit(scope.worktree)
            store.record_landing(landing_id, "stopped", stop.text, head_commit=head)
            report(LandingStep("stopped", False, stop.text, task_id=stop.task_id))
            return LandingResult(False, stop.text, head, landed=_landed(run))
        return result


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


def _landed(run: _Landing) -> tuple[str, ...]:
    return tuple(t for t, r in run.rows.items() if r.state in (LANDED, HELD))


def _message(ws: Workstream, into: str) -> str:
    return f"Land {ws.task_id}: {ws.name}\n\nMerge {ws.branch} into {into} (mission-control land)."


def _settle(run: _Landing) -> None:
    """Finish or undo the merge an earlier landing left under way (a stop or a kill)."""
    path = run.path
    for row in run.rows.values():
        if row.state not in _IN_FLIGHT or row.branch_head is None or row.before is None:
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


def _land_one(run: _Landing, ws: Workstream) -> None:
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
            run.report(
                LandingStep(
                    "merge", True, f"{ws.task_id}: landed", ws.task_id, ws.branch, row.merge_commit
                )
            )
        elif row.state not in (LANDED, HELD):
            run.record(ws.task_id, HELD, branch_head=commit, detail=f"already in {into}")
            run.report(
                LandingStep(
                    "merge", True, f"{ws.task_id}: already in {into}", ws.task_id, ws.branch, head
                )
            )
        else:
            run.report(
                LandingStep(
                    "merge",
                    True,
                    f"{ws.task_id}: landed before",
                    ws.task_id,
                    ws.branch,
                    row.merge_commit or head,
                )
            )
        return
    run.record(ws.task_id, MERGING, branch_head=commit, before=head, merge_commit=None, files=[])
    crashpoints.reach("land.merging")
    result = git_landing.merge_commit_into(path, commit, _message(ws, into))
    if result.outcome == "merged":
        crashpoints.reach("land.merged")
        run.record(ws.task_id, MERGED, merge_commit=result.head)
        run.report(
            LandingStep(
                "merge",
                True,
                f"{ws.task_id}: merged {ws.branch} into {into}",
                ws.task_id,
                ws.branch,
                result.head,
            )
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
    run.report(
        LandingStep(
            "merge",
            False,
            f"{ws.task_id}: merging {ws.branch} into {into} conflicts in {shown}",
            ws.task_id,
            ws.branch,
            files=files,
        )
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
    run: _Landing, ws: Workstream, commit: str, before: str, files: tuple[str, ...]
) -> None:
    tool = run.request.resolve_tool
    assert tool is not None
    run.record(ws.task_id, RESOLVING, files=files, detail=f"{tool} resolving {', '.join(files)}")
    crashpoints.reach("land.resolving")
    end = run_resolver(run.request.plan, tool, run.scope, ws, files, run.env())
    run.report(
        LandingStep(
            "resolve",
            end.ok,
            f"{ws.task_id}: {end.line}",
            ws.task_id,
            ws.branch,
            files=files,
            tail=end.tail,
        )
    )
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
            run.report(
                LandingStep(
                    "merge",
                    True,
                    f"{ws.task_id}: merged with {tool}'s resolution",
                    ws.task_id,
                    ws.branch,
                    head,
                    files,
                )
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


def _run_checks(run: _Landing, ws: Workstream | None, *, undo_to: str | None) -> None:
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


def _report_check(run: _Landing, ws: Workstream | None, result: ProcessEnd) -> None:
    after = f"after {ws.task_id}: " if ws is not None else "at the end: "
    run.report(
        LandingStep(
            "check", result.ok, after + result.line, ws.task_id if ws else None, tail=result.tail
        )
    )


def _tail_text(result: ProcessEnd) -> str:
    if not result.tail:
        return ""
    return "; its last lines:\n" + "\n".join(f"    {line}" for line in result.tail)


def _deliver(run: _Landing, base_ref: str) -> LandingResult:
    """Push the integration branch, open its pull request, close the branches' own."""
    scope, path = run.scope, run.path
    head = head_commit(path)
    landed = _landed(run)
    pr_url = None
    if has_remote(scope.repo, scope.remote):
        try:
            push_branch(path, scope.remote, scope.into)
        except GitError as err:
            raise LandingStopped(f"landing of {scope.into}: {err}") from None
        crashpoints.reach("land.pushed")
        run.report(
            LandingStep(
                "push",
                True,
                f"pushed {scope.into} to {scope.remote}",
                branch=scope.into,
                commit=head,
            )
        )
        if scope.into != scope.base_branch:
            pr_url = _pull_request(run, base_ref)
    else:
        run.report(
            LandingStep(
                "push",
                True,
                f"not pushed: {scope.repo} has no remote '{scope.remote}'",
                branch=scope.into,
                commit=head,
            )
        )
    if pr_url is not None and run.request.close_prs:
        _close_prs(run, pr_url)
    detail = f"{len(landed)} branch{'es' if len(landed) != 1 else ''} on {scope.into}"
    run.store.record_landing(
        run.landing_id, "landed", detail, head_commit=head, pr_url=pr_url, finished=True
    )
    return LandingResult(True, detail, head, pr_url, landed)


def _pull_request(run: _Landing, base_ref: str) -> str | None:
    scope = run.scope
    lines = [
        f"Landing of {scope.what} of mission-control run `{scope.run_id}`: the branches below,"
        f" merged in dependency order into `{scope.into}` (from `{base_ref}`).",
        "",
    ]
    for ws in scope.order:
        row = run.rows[ws.task_id]
        own = scope.pr_urls.get(ws.task_id)
        lines.append(f"- `{ws.task_id}` {ws.name}: `{ws.branch}`" + (f" ({own})" if own else ""))
        if row.detail and row.state in (LANDED, HELD):
            lines[-1] += f" — {row.detail}"
    checks = ", ".join(f"`{c.name}`" for c in scope.checks) or "none configured"
    mode = {"each": "after each merge", "end": "once at the end", "none": "not run"}
    lines += ["", f"Checks ({mode[run.request.checks]}): {checks}"]
    if scope.left_out:
        left = ", ".join(f"`{t}` ({s})" for t, s in scope.left_out)
        lines += ["", f"Not landed: {left}"]
    title = f"[land] {scope.what[0].upper()}{scope.what[1:]}: {len(scope.order)} workstreams"
    result = pull_requests.submit_pull_request(
        run.path,
        head=scope.into,
        base=scope.base_branch,
        title=title,
        body="\n".join(lines) + "\n",
        body_name=f"pr-body-{scope.into.replace('/', '-')}.md",
    )
    if result.status in ("skipped", "failed"):
        run.report(
            LandingStep(
                "pr",
                result.status == "skipped",
                f"PR {result.status}: {result.reason}; by hand: {result.command}",
            )
        )
        return None
    crashpoints.reach("land.pr_opened")
    run.report(LandingStep("pr", True, f"PR {result.status} {result.url or ''}".rstrip()))
    return result.url


def _close_prs(run: _Landing, pr_url: str) -> None:
    scope = run.scope
    for ws in scope.order:
        row = run.rows[ws.task_id]
        own = scope.pr_urls.get(ws.task_id)
        if own is None or row.pr_closed or row.state not in (LANDED, HELD):
            continue
        comment = f"Landed in {pr_url} (branch `{scope.into}`) by mission-control."
        result = pull_requests.close_pull_request(run.path, own, comment)
        ok = result.status == "updated"
        if ok:
            run.record(ws.task_id, row.state, detail=row.detail, pr_closed=True)
        text = f"{ws.task_id}: closed {own}" if ok else f"{ws.task_id}: {result.reason}"
        run.report(LandingStep("close_pr", ok, text, ws.task_id))
