"""Failures of git steps callers tell apart: a merge conflict, a path in the way, a refused push."""

from __future__ import annotations

from pathlib import Path

from ..errors import GitError


class MergeConflictError(GitError):
    """Merging a dependency's branch into a workstream's branch conflicted."""

    def __init__(self, worktree: Path, branch: str, dependency: str, files: list[str]) -> None:
        self.worktree = worktree
        self.branch = branch
        self.dependency = dependency
        self.files = files
        shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        super().__init__(
            f"{worktree}: merging dependency {dependency} into {branch} conflicts in {shown}"
            " — resolve the conflict on the dependency's branch, or set `base: branch` for"
            " this workstream, then retry"
        )


class WorktreePathError(GitError):
    """Something that is not this workstream's worktree sits where it should go."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


class PushRejectedError(GitError):
    """A push failed: the remote refused it, or could not be reached.

    The message quotes git's own words and names a cause only when git names
    it (a non-fast-forward); anything else is left to git's message.
    """

    def __init__(self, worktree: Path, remote: str, branch: str, git_message: str) -> None:
        self.worktree = worktree
        self.remote = remote
        self.branch = branch
        self.git_message = git_message
        lowered = git_message.lower()
        if "non-fast-forward" in lowered or "fetch first" in lowered:
            fix = (
                f"the remote's {branch} has commits this branch lacks: merge them in"
                f" {worktree}, or delete the remote branch, then retry"
            )
        else:
            fix = (
                f"see git's message; `git -C {worktree} push {remote} {branch}` shows it again"
                " (or set `push: false` for this workstream)"
            )
        outcome = "was rejected" if "rejected" in lowered else "failed"
        super().__init__(
            f"{worktree}: pushing {branch} to {remote} {outcome}: {git_message} — {fix}"
        )
