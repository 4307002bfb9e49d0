"""Finishing a workstream after its tool exits 0: checks, commit, push, pull request, forecast.

The order protects the user's work: a failing check still commits (nothing is
lost) but never pushes; a PR step that cannot run (no ``gh``) is skipped with
the command to run by hand, never a failure. Each step's outcome is published
as a ``FinishStepDone`` event and ends up in the attempt's log.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GitError
from ..git import conflicts, pull_requests, repo, worktrees
from ..plan.model import Check, Plan, Workstream
from . import events as ev
from .supervisor import spawn_attempt


@dataclass(frozen=True, slots=True)
class FinishContext:
    plan: Plan
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
    should_stop: Callable[[], bool]
    clock: Callable[[], float]


@dataclass(frozen=True, slots=True)
class FinishOutcome:
    ok: bool
    detail: str


async def finish_workstream(ctx: FinishContext) -> FinishOutcome:
    ws = ctx.ws
    check_lines: list[str] = []
    failed_check: str | None = None
    for check in ws.checks:
        if ctx.should_stop():
            return FinishOutcome(False, "stopped during checks")
        ok, line = await _run_check(ctx, check)
        check_lines.append(line)
        _step(ctx, "check", ok, line)
        if not ok:
            failed_check = line
            break

    body = (
        f"Run {ctx.run_id}, attempt {ctx.attempt}, tool {ws.tool}.\n"
        f"Workstream {ws.task_id}: {ws.name}"
    )
    try:
        commit = await asyncio.to_thread(
            worktrees.commit_work, ctx.worktree, ctx.base_commit, f"[{ws.task_id}] {ws.name}", body
        )
    except GitError as err:
        _step(ctx, "commit", False, str(err))
        return FinishOutcome(False, str(err))
    diffstat = f"{commit.files} files, +{commit.insertions} -{commit.deletions}"
    await ctx.record_result(
        ws,
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
            ws.task_id,
            commit.head,
            commit.files,
            commit.insertions,
            commit.deletions,
            None,
            ctx.clock(),
        )
    )
    _step(
        ctx, "commit", True, f"{commit.head[:10]} ({diffstat})" if commit.changed else "no changes"
    )
    if commit.changed:
        await _forecast(ctx)

    if failed_check is not None:
        return FinishOutcome(False, f"{failed_check}; work committed on {ws.branch}, not pushed")
    if not commit.changed:
        if ws.require_changes:
            return FinishOutcome(False, "no changes, and require_changes is set")
        return FinishOutcome(True, "no changes")

    pushed = False
    if ws.push and await asyncio.to_thread(repo.has_remote, ws.repo, ws.remote):
        try:
            await asyncio.to_thread(worktrees.push_branch, ctx.worktree, ws.remote, ws.branch)
        except GitError as err:
            _step(ctx, "push", False, str(err))
            return FinishOutcome(False, str(err))
        pushed = True
        _step(ctx, "push", True, f"{ws.remote}/{ws.branch}")

    pr_url: str | None = None
    pr_note = ""
    if pushed and ws.pr.enabled is not False:
        result = await asyncio.to_thread(
            pull_requests.open_pull_request,
            ws,
            worktree=ctx.worktree,
            run_id=ctx.run_id,
            diffstat=diffstat,
            checks="\n".join(check_lines) or "no checks",
        )
        pr_url = result.url
        ok = result.status != "failed"
        _step(ctx, "pr", ok, result.url or f"{result.status}: {result.reason}")
        if result.status == "skipped":
            pr_note = f"; PR skipped ({result.reason})"
        elif result.status == "failed":
            return FinishOutcome(False, f"pull request failed: {result.reason}")
        await ctx.record_result(ws, {"pr_url": pr_url})
        ctx.publish(
            ev.WorkstreamResultUpdated(
                ctx.run_id,
                ws.task_id,
                commit.head,
                commit.files,
                commit.insertions,
                commit.deletions,
                pr_url,
                ctx.clock(),
            )
        )
    where = "pushed" if pushed else "committed"
    return FinishOutcome(True, f"{where} {diffstat}{pr_note}")


async def _forecast(ctx: FinishContext) -> None:
    ws = ctx.ws
    others = ctx.finished_branches(ws)
    try:
        found = await asyncio.to_thread(
            conflicts.forecast_conflicts,
            ws.repo,
            ws.branch,
            [branch for _, branch in others],
            ws.base_branch,
        )
    except GitError as err:
        _step(ctx, "forecast", False, str(err))
        return
    by_branch = {branch: task_id for task_id, branch in others}
    pairs = tuple((by_branch.get(other, f"base:{other}"), tuple(files)) for other, files in found)
    await ctx.record_result(ws, {"conflicts": [[o, list(f)] for o, f in pairs]})
    ctx.publish(ev.ConflictsForecast(ctx.run_id, ws.task_id, pairs, ctx.clock()))


async def _run_check(ctx: FinishContext, check: Check) -> tuple[bool, str]:
    """Run one check in the worktree, its output appended to the attempt's log."""
    argv = ["/bin/sh", "-c", check.argv[0]] if check.shell else list(check.argv)
    shown = check.argv[0] if check.shell else shlex.join(check.argv)
    with ctx.log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n──── check '{check.name}': {shown} ────\n")
    env = dict(os.environ)
    env.update(ctx.ws.env)
    exit_file = ctx.log_path.with_name(f"{ctx.log_path.stem}.check.exit")
    try:
        proc = await asyncio.to_thread(
            spawn_attempt,
            argv,
            cwd=ctx.worktree,
            env=env,
            log_path=ctx.log_path,
            stdin_path=None,
            exit_file=exit_file,
        )
    except OSError as err:
        return False, f"check '{check.name}' could not start: {err.strerror}"
    try:
        status = await asyncio.wait_for(proc.wait(), timeout=check.timeout_minutes * 60)
    except TimeoutError:
        await proc.terminate(ctx.grace_seconds)
        return False, f"check '{check.name}' timed out after {check.timeout_minutes:g} min"
    if status.exit_code == 0:
        return True, f"check '{check.name}' passed"
    how = f"signal {status.signal}" if status.signal is not None else f"exited {status.exit_code}"
    return False, f"check '{check.name}' {how}"


def _step(ctx: FinishContext, step: str, ok: bool, detail: str) -> None:
    ctx.publish(ev.FinishStepDone(ctx.run_id, ctx.ws.task_id, step, ok, detail, ctx.clock()))
    mark = "ok" if ok else "FAILED"
    try:
        with ctx.log_path.open("a", encoding="utf-8") as log:
            log.write(f"──── {step} {mark}: {detail}\n")
    except OSError:
        pass
