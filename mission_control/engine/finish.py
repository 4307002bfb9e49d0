"""Finishing a workstream after its tool exits 0: checks, commit, push, pull request, forecast.

The order protects the user's work: a failing check still commits (nothing is
lost) but never pushes; a PR step that cannot run (no ``gh``, no login) is
skipped with the command to run by hand, and a PR that GitHub refuses is
reported without failing work that is already pushed. Each step's outcome is
appended to the attempt's log, so ``mission-control logs`` tells the whole story
of an attempt, and handed back to the engine as it comes (``FinishItem``): the
engine records and publishes it. Finishing never calls into the engine; it is an
async iterator of results the engine consumes one by one, so each result is
recorded before finishing goes on (the crash points rely on that order).

The conflict forecast runs whenever the branch gets a new head (also when a
check failed: the commit is there) and compares it with the other finished
branches of the phase and with the base branch, fetched just before (the engine
then forecasts again the branches that saw an older base).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from .. import crashpoints
from ..errors import GitError, MissionControlError
from ..git import conflicts, pull_requests, remotes, repo, worktrees
from ..git.start_from import recorded_start
from ..plan.model import Check, Workstream
from ..store.private import append_private
from .ports import fill_port, port_env
from .supervisor import spawn_attempt


@dataclass(frozen=True, slots=True)
class FinishRequest:
    """What finishing one attempt needs; finishing answers with ``FinishItem`` results."""

    ws: Workstream
    run_id: str
    attempt: int
    worktree: Path
    base_commit: str
    log_path: Path
    grace_seconds: float
    stop: asyncio.Event
    """Set when the workstream is killed, skipped or the run cancelled."""
    force_push: bool = False
    """The attempt rewrote the branch (a fresh retry): push with ``--force-with-lease``."""
    ports: tuple[int, ...] = ()
    """The attempt's ports: ``MC_PORT`` and ``{port}`` in the checks."""
    settled: bool = False
    """This driver prepared the worktree for the attempt and has driven it since, so no git
    process of a killed driver can still run there (none is looked for)."""


@dataclass(frozen=True, slots=True)
class FinishOutcome:
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class StepDone:
    """A finishing step ended (already appended to the attempt's log)."""

    step: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class HeadCommitted:
    """The branch has a new head: what it changed against the base."""

    head: str
    files: int
    insertions: int
    deletions: int
    holds: str = ""
    """A commit ``head`` holds for certain, or empty (``CommitResult.holds``)."""

    @classmethod
    def of(cls, commit: worktrees.CommitResult) -> HeadCommitted:
        return cls(commit.head, commit.files, commit.insertions, commit.deletions, commit.holds)


@dataclass(frozen=True, slots=True)
class PullRequestOpened:
    url: str
    head: HeadCommitted


@dataclass(frozen=True, slots=True)
class WorkReady:
    """Checked and committed: dependents may prepare while the rest of finishing runs
    (told as soon as the commit is made, before its diff is read)."""

    head: str = ""
    holds: str = ""
    """A commit ``head`` holds for certain, or empty (``CommitResult.holds``)."""


@dataclass(frozen=True, slots=True)
class WorkDelivered:
    """Committed and pushed (or there is nowhere to push): dependents' tools may start on
    it while the pull request is opened."""


@dataclass(frozen=True, slots=True)
class ForecastDue:
    """The branch has a new head: the engine forecasts its conflicts against the phase's
    branches finished by then (``forecast``), alongside the rest of finishing."""


@dataclass(frozen=True, slots=True)
class ConflictsFound:
    """A forecast: (task id or ``base:BRANCH``, files) per branch the work would conflict
    with, and the base ref and commit it used (the engine forecasts again the branches
    that last saw an older base)."""

    pairs: tuple[tuple[str, tuple[str, ...]], ...]
    base_ref: str
    base_head: str | None


FinishItem = (
    StepDone
    | HeadCommitted
    | PullRequestOpened
    | WorkReady
    | WorkDelivered
    | ForecastDue
    | FinishOutcome
)
"""What finishing hands back, in order; the last one is the ``FinishOutcome``."""


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


async def finish_workstream(req: FinishRequest) -> AsyncIterator[FinishItem]:
    """Run the finishing steps of one attempt; never raises for git or gh trouble."""
    done: Committed | None = None
    async for item in check_and_commit(req):
        if isinstance(item, Committed):
            done = item
        else:
            yield item
    assert done is not None
    async for result in deliver(req, done, push_work(req)):
        yield result


async def check_and_commit(req: FinishRequest) -> AsyncIterator[FinishItem | Committed]:
    """Run the checks, then commit whatever the tool left (also when a check failed).

    Yields each step as it ends; the last item is the ``Committed`` state."""
    ws = req.ws
    results: list[CheckResult] = []
    for check in ws.checks:
        if req.stop.is_set():
            yield Committed(None, (), FinishOutcome(False, "stopped during checks"))
            return
        result = await _run_check(req, check)
        if result.stopped:
            yield Committed(None, (), FinishOutcome(False, "stopped during checks"))
            return
        results.append(result)
        yield await _step(req, "check", result.ok, result.line)
        if not result.ok:
            break
    failed = next((r for r in results if not r.ok), None)
    crashpoints.reach("finish.checked")

    subject, body = worktrees.commit_message(ws, req.run_id, req.attempt)
    try:
        made, described = await asyncio.to_thread(_commit, req, subject, body)
        crashpoints.reach("finish.committed")
        if failed is None and made.head != req.base_commit:
            # Dependents may prepare on this head while its diff is read.
            yield WorkReady(made.head, made.before if made.committed else "")
        if described is None:
            described = await asyncio.to_thread(
                worktrees.describe_commit, req.worktree, req.base_commit, made
            )
        commit = described
    except GitError as err:
        yield await _step(req, "commit", False, str(err))
        yield Committed(None, tuple(results), FinishOutcome(False, str(err)))
        return
    diffstat = commit.diffstat
    yield HeadCommitted.of(commit)
    if commit.committed:
        yield await _step(req, "commit", True, f"{commit.head[:10]} ({diffstat})")
    elif commit.changed:
        yield await _step(
            req, "commit", True, f"{commit.head[:10]}, the tool's own commits ({diffstat})"
        )
    else:
        yield await _step(req, "commit", True, "no changes")

    outcome: FinishOutcome | None = None
    if failed is not None:
        kept = f"work committed on {ws.branch}, not pushed" if commit.changed else "no changes made"
        outcome = FinishOutcome(False, f"{failed.line}; {kept}")
    elif not commit.changed:
        if ws.require_changes:
            outcome = FinishOutcome(False, "the tool changed nothing, and require_changes is set")
        else:
            outcome = FinishOutcome(True, "succeeded (no changes)")
    yield Committed(commit, tuple(results), outcome)


def _commit(
    req: FinishRequest, subject: str, body: str
) -> tuple[worktrees.MadeCommit, worktrees.CommitResult | None]:
    """Commit the work; described in the same trip when that needs no diff. Blocking."""
    made = worktrees.make_commit(req.worktree, req.base_commit, subject, body, settled=req.settled)
    return made, worktrees.described_without_git(req.worktree, req.base_commit, made)


async def push_work(req: FinishRequest) -> AsyncIterator[StepDone | Pushed]:
    """Push the branch from its worktree when the plan asks for it and a remote exists.

    The last item is what the push did (``Pushed``)."""
    ws = req.ws
    if not ws.push:
        yield Pushed(False)
        return
    skipped = f"skipped: {ws.repo} has no remote '{ws.remote}'"

    def where_to() -> str | None:  # one trip to a thread: the remote, and the branch there
        if not remotes.has_remote(req.worktree, ws.remote):
            append_log(req.log_path, _step_line("push", True, skipped))
            return None
        start = recorded_start(req.worktree)
        return start.push_branch if start is not None and start.push_branch else ws.branch

    target = await asyncio.to_thread(where_to)
    if target is None:
        yield StepDone("push", True, skipped)
        yield Pushed(False)
        return
    try:
        await asyncio.to_thread(
            worktrees.push_branch,
            req.worktree,
            ws.remote,
            ws.branch,
            force=req.force_push,
            to=target,
            upstream=False,
        )
    except GitError as err:
        yield await _step(req, "push", False, str(err))
        yield Pushed(False, str(err))
        return
    crashpoints.reach("finish.pushed")
    yield await _step(req, "push", True, f"{ws.remote}/{target}")
    yield Pushed(True)
    if target == ws.branch:  # once the work is delivered: no dependent waits for this
        try:
            await asyncio.to_thread(remotes.set_upstream, req.worktree, ws.branch, ws.remote)
        except GitError as err:
            await asyncio.to_thread(append_log, req.log_path, f"──── push: {err}\n")


async def already_pushed(pushed: Pushed) -> AsyncIterator[StepDone | Pushed]:
    """A push made elsewhere (on a node), for ``deliver``."""
    yield pushed


async def deliver(
    req: FinishRequest, done: Committed, push: AsyncIterator[StepDone | Pushed]
) -> AsyncIterator[FinishItem]:
    """After the commit: tell dependents, push, forecast conflicts, open the pull request."""
    ws = req.ws
    if done.outcome is not None:
        if done.changed and not done.outcome.ok:
            yield ForecastDue()  # work that failed a check is still committed
        yield done.outcome
        return
    assert done.commit is not None
    commit = done.commit
    # Checked and committed: dependents merge the local branch, so they may prepare
    # during the push, the pull request and the forecast (their tools wait for delivery).
    yield WorkReady()
    result = Pushed(False)
    async for item in push:
        if isinstance(item, Pushed):
            result = item
            if result.error is None:
                yield WorkDelivered()
        else:
            yield item
    # Only now: on a machine of few cores the forecast's git would slow the push and
    # the preparation a dependent waits for; it runs beside the pull request instead.
    yield ForecastDue()
    if result.error is not None:
        yield FinishOutcome(False, result.error)
        return
    where = f"pushed to {ws.remote}" if result.pushed else f"committed on {ws.branch}"
    detail = f"{where}: {commit.diffstat}"
    if ws.pr.enabled is False:
        yield FinishOutcome(True, detail)
        return
    if not result.pushed:
        if ws.pr.enabled:
            yield await _step(
                req, "pr", True, "skipped: the branch was not pushed, so no pull request"
            )
        yield FinishOutcome(True, detail)
        return
    async for opened in _pull_request(req, commit, list(done.results), detail):
        yield opened


async def _pull_request(
    req: FinishRequest, commit: worktrees.CommitResult, results: list[CheckResult], detail: str
) -> AsyncIterator[FinishItem]:
    """Open or update the PR; the outcome's detail says what came of it."""
    ws = req.ws
    if ws.pr.body is not None:
        # The reviewer always sees what changed and what was checked.
        body = ws.pr.body.rstrip("\n")
        if "{diffstat}" not in body:
            body += "\n\nChanges: {diffstat}"
        if "{checks}" not in body:
            body += "\n\nChecks:\n{checks}"
        ws = ws.model_copy(update={"pr": ws.pr.model_copy(update={"body": body + "\n"})})
    start = await asyncio.to_thread(recorded_start, req.worktree)
    result = await asyncio.to_thread(
        pull_requests.open_pull_request,
        ws,
        worktree=req.worktree,
        run_id=req.run_id,
        diffstat=commit.diffstat,
        checks="\n".join(r.summary for r in results) or "no checks configured",
        head=start.push_branch if start is not None else None,
    )
    if result.status == "skipped":
        yield await _step(
            req, "pr", True, f"skipped: {result.reason}; to open it by hand: {result.command}"
        )
        yield FinishOutcome(True, f"{detail}; PR skipped ({result.reason})")
        return
    if result.status == "failed":
        yield await _step(req, "pr", False, f"{result.reason}; by hand: {result.command}")
        yield FinishOutcome(True, f"{detail}; PR failed: {result.reason}")
        return
    crashpoints.reach("finish.pr_opened")
    yield await _step(req, "pr", True, f"{result.status} {result.url or '(no URL printed by gh)'}")
    if result.url is None:
        yield FinishOutcome(True, f"{detail}; PR {result.status}")
        return
    yield PullRequestOpened(result.url, HeadCommitted.of(commit))
    yield FinishOutcome(True, f"{detail}; PR {result.url}")


async def forecast(
    ws: Workstream,
    log_path: Path,
    others: tuple[tuple[str, str, str], ...],
    known_holds: tuple[tuple[str, str], ...] = (),
) -> StepDone | ConflictsFound:
    """Trial-merge the branch's head with ``others`` ((task id, branch, head or "") of
    the phase's finished branches) and the current base; a failed forecast is a failed
    step. ``known_holds``: what finishing saw of the branches' ancestry; the heads given
    are the ones finishing made (``conflicts.forecast``)."""
    branches = [branch for _, branch, _ in others]
    heads = {branch: head for _, branch, head in others if head}

    def trial_merge() -> tuple[str, conflicts.Forecast]:  # one trip to a thread
        base_ref, warning = _current_base(ws)
        if warning:
            append_log(log_path, f"──── forecast: {warning}\n")
        return base_ref, conflicts.forecast(
            ws.repo, ws.branch, branches, base_ref, known_holds, heads
        )

    try:
        base_ref, result = await asyncio.to_thread(trial_merge)
        found, base_head = result.conflicts, result.base_head
    except GitError as err:
        return await _step_to(log_path, "forecast", False, str(err))
    by_branch = {branch: task_id for task_id, branch, _ in others}
    pairs = tuple(
        (by_branch.get(other, f"base:{ws.base_branch}"), tuple(files)) for other, files in found
    )
    if pairs:  # the event reaches the views; the log keeps it with the attempt
        shown = "; ".join(f"{other}: {', '.join(files)}" for other, files in pairs)
        text = f"──── forecast: would conflict with {shown}\n"
        await asyncio.to_thread(append_log, log_path, text)
    return ConflictsFound(pairs, base_ref, base_head)


def _current_base(ws: Workstream) -> tuple[str, str | None]:
    """The freshest base, fetched now: the remote's copy, else the local branch.

    Also what to tell when the fetch failed (the last fetched copy is used then).
    """
    remote_ref = f"refs/remotes/{ws.remote}/{ws.base_branch}"
    if not remotes.has_remote(ws.repo, ws.remote):
        return ws.base_branch, None
    warning = None
    try:
        # A change pushed to the base during the run must reach the forecast.
        remotes.fetch_branch(ws.repo, ws.remote, ws.base_branch, max_age=0.0)
    except GitError as err:
        warning = f"{err} (forecasting against the last fetched copy)"
    if repo.ref_exists(ws.repo, remote_ref):
        return remote_ref, warning
    return ws.base_branch, warning


async def _run_check(req: FinishRequest, check: Check) -> CheckResult:
    """Run one check in the worktree, its output appended to the attempt's log."""
    try:
        filled = fill_port(check.argv, req.ports, f"check '{check.name}'")
    except MissionControlError as err:
        return CheckResult(check, False, str(err), 0.0)
    argv = ["/bin/sh", "-c", filled[0]] if check.shell else filled
    shown = filled[0] if check.shell else shlex.join(filled)
    limit = check.timeout_minutes * 60
    await _log(req, f"\n──── check '{check.name}': {shown} (timeout {_seconds(limit)}) ────\n")
    exit_file = req.log_path.with_name(f"{req.log_path.stem}.check.exit")
    started = time.monotonic()

    def result(ok: bool, line: str, *, stopped: bool = False) -> CheckResult:
        return CheckResult(check, ok, line, time.monotonic() - started, stopped)

    try:
        proc = await asyncio.to_thread(
            spawn_attempt,
            argv,
            cwd=req.worktree,
            env={**req.ws.env, **port_env(req.ports)},
            log_path=req.log_path,
            stdin_path=None,
            exit_file=exit_file,
        )
    except OSError as err:
        return result(False, f"check '{check.name}' could not start: {err.strerror or err}")
    # Whichever comes first: the check's exit, a stop, or its timeout.
    waiting = asyncio.ensure_future(proc.wait())
    stopping = asyncio.ensure_future(req.stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, timeout=limit, return_when=FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not waiting.done():
        await proc.terminate(req.grace_seconds)
        waiting.cancel()
        if req.stop.is_set():
            return result(False, f"check '{check.name}' stopped", stopped=True)
        return result(False, f"check '{check.name}' timed out after {_seconds(limit)}")
    status = waiting.result()
    if status.exit_code == 0:
        return result(True, f"check '{check.name}' passed")
    return result(False, f"check '{check.name}' {status.describe()}")


async def _step(req: FinishRequest, step: str, ok: bool, detail: str) -> StepDone:
    """A finishing step's end, appended to the attempt's log."""
    return await _step_to(req.log_path, step, ok, detail)


async def _step_to(log_path: Path, step: str, ok: bool, detail: str) -> StepDone:
    await asyncio.to_thread(append_log, log_path, _step_line(step, ok, detail))
    return StepDone(step, ok, detail)


def _step_line(step: str, ok: bool, detail: str) -> str:
    return f"──── {step} {'ok' if ok else 'FAILED'}: {detail}\n"


async def report_step(req: FinishRequest, step: str, ok: bool, detail: str) -> StepDone:
    """``_step`` for a backend that finishes partly elsewhere."""
    return await _step(req, step, ok, detail)


async def _log(req: FinishRequest, text: str) -> None:
    await asyncio.to_thread(append_log, req.log_path, text)


def append_log(log_path: Path, text: str) -> None:
    """Append a line of ours to an attempt's log (blocking); a log that fails is let be."""
    with contextlib.suppress(OSError):  # a log that cannot be written must not fail the work
        append_private(log_path, text.encode("utf-8"))


def _seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds / 60:.1f}m"
