"""Starting a workstream from existing work: a pull request (``from: pr:123``) or a
remote branch (``from: origin/feature-x``) instead of its base.

The new branch ``ws/<PHASE>/<WS>`` starts at the fetched tip of that work, and
its base commit is that tip, so its diff shows only what the agent adds. Its
push goes to the source branch (when it lives on the workstream's remote), so
the pull request of that branch is updated instead of a new one opened. What a
``from:`` resolved to is kept in the worktree's git dir (``FROM_FILE``):
finishing reads it there, after a retry or a resume as well.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import GitError
from ..plan.model import Workstream
from .remotes import fetch_branch
from .repo import git_env, run_git, trim_message, worktree_file

FROM_FILE = "mission-control-from"
PR_PREFIX = "pr:"


@dataclass(frozen=True, slots=True)
class StartFrom:
    """Where a workstream's new branch starts, and where its work goes back."""

    source: str
    """The ``from:`` as written."""
    ref: str
    """The local ref the new branch starts from."""
    push_branch: str | None = None
    """The branch of the workstream's remote its pushes update (None: its own branch)."""
    pr_url: str | None = None


def resolve_start_from(repo: Path, ws: Workstream) -> StartFrom:
    """Fetch the work ``ws.start_from`` names (blocking); GitError naming the fix."""
    source = ws.start_from or ""
    if source.startswith(PR_PREFIX):
        return _from_pull_request(repo, ws, source[len(PR_PREFIX) :])
    remote, _, branch = source.partition("/")
    _fetch(repo, ws, remote, branch)
    push = branch if remote == ws.remote else None
    return StartFrom(source, f"refs/remotes/{remote}/{branch}", push)


def _fetch(repo: Path, ws: Workstream, remote: str, branch: str) -> None:
    if not fetch_branch(repo, remote, branch, max_age=0):
        raise GitError(
            f"{repo}: remote '{remote}' has no branch {branch} (from: {ws.start_from} of"
            f" {ws.task_id}) — push it, or fix `from:`"
        )


def _from_pull_request(repo: Path, ws: Workstream, number: str) -> StartFrom:
    gh = shutil.which("gh", path=git_env().get("PATH"))
    if gh is None:
        raise GitError(
            f"{ws.task_id}: from: pr:{number} needs the GitHub CLI `gh`, which is not installed"
            " — install it and `gh auth login`, or write `from: origin/BRANCH`"
        )
    try:
        proc = subprocess.run(
            [gh, "pr", "view", number, "--json", "headRefName,url,isCrossRepository,state"],
            cwd=repo,
            env=git_env({"GH_PROMPT_DISABLED": "1", "GH_NO_UPDATE_NOTIFIER": "1"}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
            start_new_session=True,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GitError(f"{ws.task_id}: `gh pr view {number}` failed: {err}") from None
    if proc.returncode != 0:
        raise GitError(
            f"{ws.task_id}: `gh pr view {number}` failed: {trim_message(proc.stderr, proc.stdout)}"
            " — check the number in `from:` and `gh auth status`"
        )
    try:
        info = json.loads(proc.stdout)
        head, url = str(info["headRefName"]), str(info["url"])
        cross = bool(info.get("isCrossRepository"))
    except (ValueError, KeyError, TypeError):
        raise GitError(f"{ws.task_id}: `gh pr view {number}` gave no head branch") from None
    source = f"{PR_PREFIX}{number}"
    if not cross:
        _fetch(repo, ws, ws.remote, head)
        return StartFrom(source, f"refs/remotes/{ws.remote}/{head}", head, url)
    # A fork's branch is not ours to push to: start from its head, push our own branch.
    local = f"refs/mission-control/pr/{number}"
    run_git(
        ["fetch", "--quiet", "--no-tags", ws.remote, f"+refs/pull/{number}/head:{local}"],
        repo,
        what=f"fetching pull request {number}",
        fix="check the number in `from:`",
        timeout=300,
    )
    return StartFrom(source, local, None, url)


def remember_start(worktree: Path, start: StartFrom) -> None:
    worktree_file(worktree, FROM_FILE).write_text(json.dumps(asdict(start)), encoding="utf-8")


def recorded_start(worktree: Path) -> StartFrom | None:
    """What ``from:`` resolved to when the worktree's branch was made, if it was."""
    try:
        data = json.loads(worktree_file(worktree, FROM_FILE).read_text(encoding="utf-8"))
        return StartFrom(**data)
    except (OSError, ValueError, TypeError):
        return None
