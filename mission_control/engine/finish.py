"""Finishing a workstream after its tool exits 0: checks, commit, push, pull request, forecast.

The order protects the user's work: a failing check still commits (nothing is
lost) but never pushes; a PR step that cannot run (no ``gh``, no login) is
skipped with the command to run by hand, and a PR that GitHub refuses is
reported without failing work that is already pushed. Each step's outcome is
published as a ``FinishStepDone`` event and appended to the attempt's log, so
``mission-control logs`` tells the whole story of an attempt.

The conflict forecast runs whenever the branch gets a new head (also when a
check failed: the commit is there) and compares it with the other finished
branches of the phase and with the freshest copy of the base branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import crashpoints
from ..errors import GitError
from ..git import conflicts, pull_requests, repo, worktrees
from ..plan.model import Check, Workstream
from ..store.private import append_private
from . import events as ev
from .supervisor import spawn_attempt

"""How often a running check looks whether the workstream was stopped."""


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class FinishContext:
    ws: Workstream
    run_id: str
    attempt: int
    worktree: Path
    base_commit: str
    log_path: Path
    grace_seconds: float
    publish: Callable[[ev.Event], None]
    record_result: Callable[[Workstream, dict[str, Any]], Awaitable[None]]
    finished_branches: Callable[[Workstream], list[tuple[str, str]]]
    on_conflicts: Callable[[Workstream, tuple[tuple[str, tuple[str, ...]], ...]], Awaitable[None]]
    stop_requested: asyncio.Event
    """Set when the workstream is killed, skipped or the run cancelled."""
    clock: Callable[[], float]
    force_push: bool = False
    work_ready: Callable[[], Awaitable[None]] = _nothing
    """The attempt rewrote the branch (a fresh retry): push with ``--force-with-lease``."""


@dataclass(frozen=True, slots=True)
class FinishOutcome:
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's end: ``line`` is the one-line reason, ``summary`` its PR body entry."""

    check: Check
    ok: bool
    line: str
    seconds: float
    stopped: bool = False

    @property
    def summary(self) -> str:
        status = "passed" if self.ok else self.line.removeprefix(f"check '{self.check.name}' ")
        return f"- `{self.check.name}`: {status} ({_seconds(self.seconds)})"


@dataclass(frozen=True, slots=True)
class Committed:
    """The work after checks and commit: where finishing stands before anything leaves."""

    commit: worktrees.CommitResult | None
    """None when the commit itself failed (or the checks were stopped)."""
    results: tuple[CheckResult, ...]
    outcome: FinishOutcome | None
    """Set when finishing ends here: a failed check, no changes, a stop, a git error."""

    @property
    def changed(self) -> bool:
        return self.commit is not None and self.commit.changed


@dataclass(frozen=True, slots=True)
class Pushed:
    """What the push step did: ``error`` set when it failed (and finishing fails)."""

    pushed: bool
    error: str | None = None


async def finish_workstream(ctx: FinishContext) -> FinishOutcome:
    """Run the finishing steps of one attempt; never raises for git or gh trouble."""
    done = await check_and_commit(ctx)
    return await deliver(ctx, done, lambda: push_work(ctx))


async def check_and_commit(ctx: FinishContext) -> Committed:
    """Run the checks, then commit whatever the tool left (also when a check failed)."""
    ws = ctx.ws
    results: list[CheckResult] = []
    for check in ws.checks:
        if ctx.stop_requested.is_set():
            return Committed(None, (), FinishOutcome(False, "stopped during checks"))
        result = await _run_check(ctx, check)
        if result.stopped:
            return Committed(None, (), FinishOutcome(False, "stopped during checks"))
        results.append(result)
        await report_step(ctx, "check", result.ok, result.line)
        if not result.ok:
            break
    failed = next((r for r in results if not r.ok), None)
    crashpoints.reach("finish.checked")

    subject, body = worktrees.commit_message(ws, ctx.run_id, ctx.attempt)
    try:
        commit = await asyncio.to_thread(
            worktrees.commit_work, ctx.worktree, ctx.base_commit, subject, body
        )
    except GitError as err:
        await report_step(ctx, "commit", False, str(err))
        return Committed(None, tuple(results), FinishOutcome(False, str(err)))
    crashpoints.reach("finish.committed")
    diffstat = commit.diffstat
    await _record(ctx, commit, None)
    if commit.committed:
        await report_step(ctx, "commit", True, f"{commit.head[:10]} ({diffstat})")
    elif commit.changed:
        await report_step(
            ctx, "commit", True, f"{commit.head[:10]}, the tool's own commits ({diffstat})"
        )
    else:
        await report_step(ctx, "commit", True, "no changes")

    outcome: FinishOutcome | None = None
    if failed is not None:
        kept = f"work committed on {ws.branch}, not pushed" if commit.changed else "no changes made"
        outcome = FinishOutcome(False, f"{failed.line}; {kept}")
    elif not commit.changed:
        if ws.require_changes:
            outcome = FinishOutcome(False, "the tool changed nothing, and require_changes is set")
        else:
            outcome = FinishOutcome(True, "succeeded (no changes)")
    return Committed(commit, tuple(results), outcome)


async def push_work(ctx: FinishContext) -> Pushed:
    """Push the branch from its worktree when the plan asks for it and a remote exists."""
    ws = ctx.ws
    if not ws.push:
        return Pushed(False)
    if not await asyncio.to_thread(repo.has_remote, ctx.worktree, ws.remote):
        await report_step(ctx, "push", True, f"skipped: {ws.repo} has no remote '{ws.remote}'")
        return Pushed(False)
    try:
        await asyncio.to_thread(
            worktrees.push_branch, ctx.worktree, ws.remote, ws.branch, force=ctx.force_push
        )
    except GitError as err:
        await report_step(ctx, "push", False, str(err))
        return Pushed(False, str(err))
    crashpoints.reach("finish.pushed")
    await report_step(ctx, "push", True, f"{ws.remote}/{ws.branch}")
    return Pushed(True)


async def deliver(
    ctx: FinishContext, done: Committed, push: Callable[[], Awaitable[Pushed]]
) -> FinishOutcome:
    """After the commit: tell dependents, forecast conflicts, push, open the pull request."""
    ws = ctx.ws
    if done.outcome is not None:
        if done.changed and not done.outcome.ok:
            await _forecast(ctx)  # work that failed a check is still committed
        return done.outcome
    assert done.commit is not None
    commit = done.commit
    # Checked and committed: dependents merge the local branch, so they need not wait
    # for the push, the pull request or the forecast.
    await ctx.work_ready()
    await _forecast(ctx)
    result = await push()
    if result.error is not None:
        return FinishOutcome(False, result.error)
    where = f"pushed to {ws.remote}" if result.pushed else f"committed on {ws.branch}"
    detail = f"{where}: {commit.diffstat}"
    if ws.pr.enabled is False:
        return FinishOutcome(True, detail)
    if not result.pushed:
        if ws.pr.enabled:
            await report_step(
                ctx, "pr", True, "skipped: the branch was not pushed, so no pull request"
            )
        return FinishOutcome(True, detail)
    return FinishOutcome(True, detail + await _pull_request(ctx, commit, list(done.results)))


async def _pull_request(
    ctx: FinishContext, commit: worktrees.CommitResult, results: list[CheckResult]
) -> str:
    """Open or update the PR; returns what the workstream's detail says of it."""
    ws = ctx.ws
    if ws.pr.body is not None:
        # The reviewer always sees what changed and what was checked.
        body = ws.pr.body.rstrip("\n")
        if "{diffstat}" not in body:
            body += "\n\nChanges: {diffstat}"
        if "{checks}" not in body:
            body += "\n\nChecks:\n{checks}"
        ws = ws.model_copy(update={"pr": ws.pr.model_copy(update={"body": body + "\n"})})
    result = await asyncio.to_thread(
        pull_requests.open_pull_request,
        ws,
        worktree=ctx.worktree,
        run_id=ctx.run_id,
        diffstat=commit.diffstat,
        checks="\n".join(r.summary for r in results) or "no checks configured",
    )
    if result.status == "skipped":
        await report_step(
            ctx, "pr", True, f"skipped: {result.reason}; to open it by hand: {result.command}"
        )
        return f"; PR skipped ({result.reason})"
    if result.status == "failed":
        await report_step(ctx, "pr", False, f"{result.reason}; by hand: {result.command}")
        return f"; PR failed: {result.reason}"
    crashpoints.reach("finish.pr_opened")
    await report_step(ctx, "pr", True, f"{result.status} {result.url or '(no URL printed by gh)'}")
    if result.url is None:
        return f"; PR {result.status}"
    await ctx.record_result(ctx.ws, {"pr_url": result.url})
    await _record(ctx, commit, result.url, store=False)
    return f"; PR {result.url}"


async def _record(
    ctx: FinishContext, commit: worktrees.CommitResult, pr_url: str | None, *, store: bool = True
) -> None:
    """Store and publish the branch's head and its diffstat against the base."""
    if store:
        await ctx.record_result(
            ctx.ws,
            {
                "head_commit": commit.head,
                "files_changed": commit.files,
                "insertions": commit.insertions,
                "deletions": commit.deletions,
            },
        )
    ctx.publish(
        ev.WorkstreamResultUpdated(
            ctx.run_id,
            ctx.ws.task_id,
            commit.head,
            commit.files,
            commit.insertions,
            commit.deletions,
            pr_url,
            ctx.clock(),
        )
    )


async def _forecast(ctx: FinishContext) -> None:
    """Trial-merge the new head with the phase's finished branches and the current base."""
    ws = ctx.ws
    others = ctx.finished_branches(ws)
    try:
        base_ref = await asyncio.to_thread(_current_base, ws)
        found = await asyncio.to_thread(
            conflicts.forecast_conflicts,
            ws.repo,
            ws.branch,
            [branch for _, branch in others],
            base_ref,
        )
    except GitError as err:
        await report_step(ctx, "forecast", False, str(err))
        return
    by_branch = {branch: task_id for task_id, branch in others}
    pairs = tuple(
        (by_branch.get(other, f"base:{ws.base_branch}"), tuple(files)) for other, files in found
    )
    await ctx.on_conflicts(ws, pairs)
    if pairs:  # the event reaches the views; the log keeps it with the attempt
        shown = "; ".join(f"{other}: {', '.join(files)}" for other, files in pairs)
        await _log(ctx, f"──── forecast: would conflict with {shown}\n")


def _current_base(ws: Workstream) -> str:
    """The freshest base: the remote's copy (fetched when the worktree was made), else local."""
    remote_ref = f"refs/remotes/{ws.remote}/{ws.base_branch}"
    if repo.has_remote(ws.repo, ws.remote) and repo.ref_exists(ws.repo, remote_ref):
        return remote_ref
    return ws.base_branch


async def _run_check(ctx: FinishContext, check: Check) -> CheckResult:
    """Run one check in the worktree, its output appended to the attempt's log."""
    argv = ["/bin/sh", "-c", check.argv[0]] if check.shell else list(check.argv)
    shown = check.argv[0] if check.shell else shlex.join(check.argv)
    limit = check.timeout_minutes * 60
    await _log(ctx, f"\n──── check '{check.name}': {shown} (timeout {_seconds(limit)}) ────\n")
    exit_file = ctx.log_path.with_name(f"{ctx.log_path.stem}.check.exit")
    started = time.monotonic()

    def result(ok: bool, line: str, *, stopped: bool = False) -> CheckResult:
        return CheckResult(check, ok, line, time.monotonic() - started, stopped)

    try:
        proc = await asyncio.to_thread(
            spawn_attempt,
            argv,
            cwd=ctx.worktree,
            env=ctx.ws.env,
            log_path=ctx.log_path,
            stdin_path=None,
            exit_file=exit_file,
        )
    except OSError as err:
        return result(False, f"check '{check.name}' could not start: {err.strerror or err}")
    # Whichever comes first: the check's exit, a stop, or its timeout.
    waiting = asyncio.ensure_future(proc.wait())
    stopping = asyncio.ensure_future(ctx.stop_requested.wait())
    try:
        await asyncio.wait({waiting, stopping}, timeout=limit, return_when=FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not waiting.done():
        await proc.terminate(ctx.grace_seconds)
        waiting.cancel()
        if ctx.stop_requested.is_set():
            return result(False, f"check '{check.name}' stopped", stopped=True)
        return result(False, f"check '{check.name}' timed out after {_seconds(limit)}")
    status = waiting.result()
    if status.exit_code == 0:
        return result(True, f"check '{check.name}' passed")
    return result(False, f"check '{check.name}' {status.describe()}")


async def report_step(ctx: FinishContext, step: str, ok: bool, detail: str) -> None:
    """Publish a finishing step's end and append it to the attempt's log."""
    ctx.publish(ev.FinishStepDone(ctx.run_id, ctx.ws.task_id, step, ok, detail, ctx.clock()))
    await _log(ctx, f"──── {step} {'ok' if ok else 'FAILED'}: {detail}\n")


async def _log(ctx: FinishContext, text: str) -> None:
    await asyncio.to_thread(append_log, ctx.log_path, text)


def append_log(log_path: Path, text: str) -> None:
    """Append a line of ours to an attempt's log (blocking); a log that fails is let be."""
    with contextlib.suppress(OSError):  # a log that cannot be written must not fail the work
        append_private(log_path, text.encode("utf-8"))


def _seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds / 60:.1f}m"
