"""Pull requests through the GitHub CLI (``gh``), never a hard dependency.

A pull request is the last, optional step of a workstream, so nothing here
raises: every outcome is a ``PrResult``. Without ``gh`` or without a login the
step is ``skipped`` and carries the exact command to run by hand (the body is
kept in a file for it). A rerun finds the branch's open pull request with
``gh pr list --head`` and edits it instead of opening a second one.

``gh`` runs in the workstream's worktree so that it finds the repository from
its remotes, with prompts disabled and no terminal, like every git call.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import GitError
from ..plan.model import Workstream
from .repo import git_env, git_path, trim_message

PrStatus = Literal["created", "updated", "skipped", "failed"]

PLACEHOLDERS = ("task_id", "name", "phase_id", "ws_id", "branch", "diffstat", "checks", "run_id")
"""The names a PR title or body template may use, as ``{name}``."""

DEFAULT_BODY = """\
Workstream `{task_id}`: {name}

Branch `{branch}`, from mission-control run `{run_id}`.

Changes: {diffstat}

Checks:
{checks}
"""

GH_TIMEOUT = 120.0
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_URL_RE = re.compile(r"https?://\S+")


@dataclass(frozen=True, slots=True)
class PrResult:
    status: PrStatus
    url: str | None = None
    reason: str = ""
    """Why it was skipped or failed (one line)."""
    command: str = ""
    """The shell line that opens the pull request by hand (always filled in)."""


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill the known ``{placeholders}``; any other braces are left as written."""
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def template_values(ws: Workstream, run_id: str, diffstat: str, checks: str) -> dict[str, str]:
    return {
        "task_id": ws.task_id,
        "name": ws.name,
        "phase_id": ws.phase_id,
        "ws_id": ws.id,
        "branch": ws.branch,
        "diffstat": diffstat or "no changes",
        "checks": checks or "none",
        "run_id": run_id,
    }


def open_pull_request(
    ws: Workstream,
    worktree: Path,
    *,
    run_id: str,
    diffstat: str = "",
    checks: str = "",
    body_path: Path | None = None,
    gh: str = "gh",
    env: Mapping[str, str] | None = None,
    timeout: float = GH_TIMEOUT,
    head: str | None = None,
) -> PrResult:
    """Open (or, on a rerun, update) the pull request of ``ws``'s pushed branch.

    Title and body come from ``ws.pr`` templates; the base is ``ws.pr.base``
    or the workstream's base branch. The body is written to ``body_path``
    (default: a file in the worktree's own git dir, outside its files) and
    passed with ``--body-file``. ``env`` entries are added to the environment
    ``gh`` runs with (and its ``PATH`` is where ``gh`` is looked for).

    ``head``: the branch the work was pushed to when it is not the workstream's own
    (``from:``); an open pull request of that branch is someone's: the push has
    updated it, and its title and body are left as they are.
    """
    worktree = Path(worktree)
    values = template_values(ws, run_id, diffstat, checks)
    return submit_pull_request(
        worktree,
        head=head or ws.branch,
        theirs=head is not None and head != ws.branch,
        base=ws.pr.base or ws.landed_from or ws.base_branch,
        title=render(ws.pr.title, values),
        body=render(ws.pr.body if ws.pr.body is not None else DEFAULT_BODY, values),
        # Named per workstream: PRs of several branches may be opened from one folder.
        body_name=f"pr-body-{ws.phase_id}-{ws.id}.md",
        draft=ws.pr.draft,
        labels=ws.pr.labels,
        body_path=body_path,
        gh=gh,
        env=env,
        timeout=timeout,
    )


def submit_pull_request(
    worktree: Path,
    *,
    head: str,
    base: str,
    title: str,
    body: str,
    body_name: str,
    draft: bool = False,
    labels: Sequence[str] = (),
    body_path: Path | None = None,
    gh: str = "gh",
    env: Mapping[str, str] | None = None,
    timeout: float = GH_TIMEOUT,
    theirs: bool = False,
) -> PrResult:
    """Open the pull request of the pushed branch ``head`` into ``base``, or update the
    open one a rerun finds; the body goes through a file (``body_path``, or ``body_name``
    in the worktree's own git dir). ``theirs``: an open pull request of ``head`` is
    someone else's, and is left as it is."""
    try:
        body_file = body_path or git_path(worktree, f"mission-control/{body_name}")
        body_file.parent.mkdir(parents=True, exist_ok=True)
        body_file.write_text(body, encoding="utf-8")
    except (OSError, GitError) as exc:
        return PrResult("failed", reason=f"{worktree}: cannot write the PR body: {exc}")

    create = ["pr", "create", "--base", base, "--head", head, "--title", title]
    create += ["--body-file", str(body_file)]
    if draft:
        create.append("--draft")
    for label in labels:
        create += ["--label", label]
    command = f"cd {shlex.quote(str(worktree))} && {shlex.join(['gh', *create])}"

    found = _find_gh(gh, env)
    if isinstance(found, PrResult):
        return PrResult(found.status, reason=found.reason, command=command)
    gh_path, run_env = found

    def call(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return _call_gh(gh_path, args, worktree, run_env, timeout)

    def failed(doing: str, proc: subprocess.CompletedProcess[str]) -> PrResult:
        message = trim_message(proc.stderr, proc.stdout)
        return PrResult(
            "failed",
            reason=f"{worktree}: `gh {doing}` failed: {message} — fix it, then run the command",
            command=command,
        )

    try:
        auth = call(["auth", "status"])
        if auth.returncode != 0:
            return PrResult(
                "skipped",
                reason=f"gh is not logged in ({trim_message(auth.stderr, auth.stdout)})"
                " — run `gh auth login`, then the command",
                command=command,
            )
        listed = call(["pr", "list", "--head", head, "--json", "url"])
        if listed.returncode != 0:
            return failed("pr list", listed)
        try:
            existing = [str(pr["url"]) for pr in json.loads(listed.stdout or "[]")]
        except (ValueError, TypeError, KeyError):
            existing = []
        if existing and theirs:
            return PrResult("updated", url=existing[0], command=command)
        if existing:
            url = existing[0]
            edit = ["pr", "edit", url, "--title", title, "--body-file", str(body_file)]
            edit += ["--base", base]
            for label in labels:
                edit += ["--add-label", label]
            edited = call(edit)
            if edited.returncode != 0:
                return failed("pr edit", edited)
            return PrResult("updated", url=url, command=command)
        created = call(create)
        if created.returncode != 0:
            return failed("pr create", created)
        urls = _URL_RE.findall(created.stdout)
        return PrResult("created", url=urls[-1] if urls else None, command=command)
    except subprocess.TimeoutExpired:
        return PrResult(
            "failed",
            reason=f"{worktree}: gh did not answer within {timeout:.0f}s — check the network,"
            " then run the command",
            command=command,
        )
    except OSError as exc:
        return PrResult("failed", reason=f"{worktree}: cannot run gh: {exc}", command=command)


def close_pull_request(
    worktree: Path,
    url: str,
    comment: str,
    *,
    gh: str = "gh",
    env: Mapping[str, str] | None = None,
    timeout: float = GH_TIMEOUT,
) -> PrResult:
    """Close the pull request ``url`` with ``comment``; ``updated`` when it is closed."""
    command = f"cd {shlex.quote(str(worktree))} && " + shlex.join(
        ["gh", "pr", "close", url, "--comment", comment]
    )
    found = _find_gh(gh, env)
    if isinstance(found, PrResult):
        return PrResult(found.status, reason=found.reason, command=command)
    gh_path, run_env = found
    try:
        closed = _call_gh(
            gh_path, ["pr", "close", url, "--comment", comment], worktree, run_env, timeout
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        return PrResult("failed", reason=f"{worktree}: cannot run gh: {exc}", command=command)
    if closed.returncode != 0:
        message = trim_message(closed.stderr, closed.stdout)
        return PrResult("failed", reason=f"`gh pr close` failed: {message}", command=command)
    return PrResult("updated", url=url, command=command)


def _find_gh(gh: str, env: Mapping[str, str] | None) -> tuple[str, dict[str, str]] | PrResult:
    """Where ``gh`` is and the environment it runs with, or why it cannot run."""
    run_env = git_env(
        {"GH_PROMPT_DISABLED": "1", "GH_NO_UPDATE_NOTIFIER": "1", "NO_COLOR": "1", **(env or {})}
    )
    gh_path = shutil.which(gh, path=run_env.get("PATH"))
    if gh_path is None:
        return PrResult(
            "skipped",
            reason="the GitHub CLI `gh` is not installed (https://cli.github.com);"
            " open the pull request by hand",
        )
    return gh_path, run_env


def _call_gh(
    gh_path: str, args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [gh_path, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        start_new_session=True,
        check=False,
    )
