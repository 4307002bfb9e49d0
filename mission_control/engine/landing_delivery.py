"""After the merges: push the integration branch, open its pull request (listing what it
holds, through the same ``gh`` code as a workstream's), close the branches' own."""

from __future__ import annotations

from .. import crashpoints
from ..errors import GitError
from ..git import landing as git_landing
from ..git import pull_requests
from ..git.commits import push_branch
from ..git.remotes import has_remote
from ..git.repo import head_commit
from .landing_steps import HELD, LANDED, LandingResult, LandingRun, LandingStopped, landed_tasks


def deliver(run: LandingRun, base_ref: str) -> LandingResult:
    """Push the integration branch, open its pull request, close the branches' own."""
    scope, path = run.scope, run.path
    head = head_commit(path)
    landed = landed_tasks(run)
    pr_url = None
    if not scope.push:
        run.say("push", True, "not pushed: the plan sets `push: false`", commit=head)
    elif not has_remote(scope.repo, scope.remote):
        text = f"not pushed: {scope.repo} has no remote '{scope.remote}'"
        run.say("push", True, text, commit=head)
    else:
        try:
            if run.detached:
                git_landing.push_head(path, scope.remote, scope.into)
            else:
                force = git_landing.replaces_old_tip(scope.repo, scope.remote, scope.into, head)
                push_branch(path, scope.remote, scope.into, force=force)
        except GitError as err:
            raise LandingStopped(f"landing of {scope.into}: {err}") from None
        crashpoints.reach("land.pushed")
        run.say("push", True, f"pushed {scope.into} to {scope.remote}", commit=head)
        # Landed straight into the base, there is nothing to ask to merge.
        if scope.into != scope.base_branch and scope.pull_request:
            pr_url = _pull_request(run, base_ref)
        elif scope.into != scope.base_branch:
            run.say("pr", True, "no pull request: the plan sets `pr: false`")
        if run.request.close_prs and (pr_url or scope.into == scope.base_branch):
            _close_prs(run, pr_url or f"{scope.into} at {head[:12]}")
    detail = f"{len(landed)} branch{'es' if len(landed) != 1 else ''} on {scope.into}"
    run.store.record_landing(
        run.landing_id, "landed", detail, head_commit=head, pr_url=pr_url, finished=True
    )
    return LandingResult(True, detail, head, pr_url, landed)


def _pull_request(run: LandingRun, base_ref: str) -> str | None:
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
        text = f"PR {result.status}: {result.reason}; by hand: {result.command}"
        run.say("pr", result.status == "skipped", text)
        return None
    crashpoints.reach("land.pr_opened")
    run.say("pr", True, f"PR {result.status} {result.url or ''}".rstrip())
    return result.url


def _close_prs(run: LandingRun, landed_in: str) -> None:
    scope = run.scope
    for ws in scope.order:
        row = run.rows[ws.task_id]
        own = scope.pr_urls.get(ws.task_id)
        if own is None or row.pr_closed or row.state not in (LANDED, HELD):
            continue
        comment = f"Landed in {landed_in} (branch `{scope.into}`) by mission-control."
        result = pull_requests.close_pull_request(run.path, own, comment)
        ok = result.status == "updated"
        if ok:
            run.record(ws.task_id, row.state, detail=row.detail, pr_closed=True)
        text = f"{ws.task_id}: closed {own}" if ok else f"{ws.task_id}: {result.reason}"
        run.say("close_pr", ok, text, ws)
