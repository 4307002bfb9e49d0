"""Merging dependency branches into a workstream's worktree, all or nothing."""

from __future__ import annotations

from pathlib import Path

from ..errors import GitError
from .errors import MergeConflictError
from .identity import identity_config
from .repo import (
    head_commit,
    is_ancestor,
    is_dirty,
    ref_exists,
    rev_parse,
    run_git,
    trim_message,
)

MERGE_SUBJECT = "Merge dependency "


def merge_dependencies(
    path: Path,
    branch: str,
    dependencies: list[str],
    *,
    before: str,
    ref_prefix: str = "refs/heads/",
) -> list[str]:
    """Merge each dependency's branch (``ref_prefix`` + name) into the worktree at ``path``."""
    merged: list[str] = []
    for dep in dependencies:
        ref = f"{ref_prefix}{dep}"
        if not ref_exists(path, ref):
            raise GitError(
                f"{path}: dependency branch {dep} does not exist — run the dependency"
                " first, or set `base: branch` for this workstream"
            )
        if is_ancestor(path, ref, "HEAD"):
            continue  # merged before (a retry): nothing to do
        if not merged and is_dirty(path, untracked=False):
            raise GitError(
                f"{path}: cannot merge dependency {dep} into {branch}: the worktree has"
                " uncommitted changes — retry fresh, or commit them first"
            )
        out = run_git(
            [
                "merge",
                "--ff",
                "--no-edit",
                "--no-verify",
                "--quiet",
                "-m",
                f"{MERGE_SUBJECT}{dep} into {branch}",
                ref,
            ],
            path,
            check=False,
            config=[*identity_config(path), "rerere.enabled=false", "merge.autoStash=false"],
        )
        if out.returncode == 0:
            merged.append(dep)
            continue
        files = unmerged_files(path)
        if rev_parse(path, "MERGE_HEAD"):
            run_git(["merge", "--abort"], path, check=False)
        if head_commit(path) != before or is_dirty(path, untracked=False):
            # Earlier dependencies of this call were merged: go back to where we began.
            run_git(["reset", "--hard", "--quiet", before], path, what="undoing the merge")
        if files:
            raise MergeConflictError(path, branch, dep, files)
        raise GitError(
            f"{path}: merging dependency {dep} into {branch} failed:"
            f" {trim_message(out.stderr, out.stdout)}"
            " — clean the worktree (retry fresh), then retry"
        )
    return merged


def unmerged_files(path: Path) -> list[str]:
    """The files a stopped merge left in conflict, each once, in git's order."""
    out = run_git(["ls-files", "--unmerged", "-z"], path, check=False).stdout
    files: list[str] = []
    for item in out.split("\0"):
        name = item.partition("\t")[2]
        if name and name not in files:
            files.append(name)
    return files
