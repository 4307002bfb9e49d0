"""The pass that looks at the machine: repositories, branches, remotes, folders, prompt files.

The only part of the loader that touches the disk or git, so leaving it out
(``check_filesystem=False``) validates a plan written for another machine.
It runs after resolution, on absolute paths: a repository must exist (a
folder inside one stands for its top level), its base branch must be a local
branch or on the remote, a remote the plan names must be configured,
worktrees may not land inside the checkout or its ``.git``, and a prompt file
must read as the run will read it (a FIFO or a device is refused, not
opened). Git is asked once per repository and each path looked at once, so
thousands of workstreams sharing a repository cost one set of git calls.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..git.refs import RepoCheckError, RepoRefs, ignores, read_repo_refs
from .files import FileReadError, read_regular_file
from .problems import Problems, close
from .shapes import WorkstreamDraft
from .yaml_nodes import KeyPath

_Found = tuple[str, str] | None
"""What is wrong and the fix ("" for the usual one), or ``None``."""


class Environment:
    """Checks resolved workstreams against the machine; ``folder`` is the plan's."""

    def __init__(self, problems: Problems, folder: Path) -> None:
        self.problems = problems
        self.folder = folder
        self._repos: dict[Path, RepoRefs | RepoCheckError] = {}
        self._files: dict[Path, _Found] = {}
        self._roots: dict[tuple[Path, Path], _Found] = {}

    def check(self, draft: WorkstreamDraft) -> None:
        self._check_prompt_file(draft)
        refs = self._check_repo(draft)
        if refs is not None:
            self._check_base_branch(draft, refs)
            self._check_remote(draft, refs)
        self._check_worktree_root(draft, refs)

    def _where_hint(self, text: str) -> str:
        hint = f"relative paths start at the plan's folder ({self.folder})"
        if "\\" in text and os.sep == "/":
            hint = "a backslash is not a folder separator here: write '/' instead; " + hint
        return hint

    def _check_prompt_file(self, draft: WorkstreamDraft) -> None:
        """Read the prompt file as the run will: a file that fails here fails validation."""
        file = draft.kwargs.get("prompt_file")
        if file is None:
            return
        path: KeyPath = (*draft.path, "prompt_file")
        if file not in self._files:
            self._files[file] = _prompt_file_problem(file)
        found = self._files[file]
        if found is not None:
            reason, hint = found
            text = self.problems.doc.texts.get(path, str(file))
            draft.fail(
                self.problems,
                path,
                f"prompt file {str(file)!r} {reason}",
                hint or ("create it, or fix the path; " + self._where_hint(text)),
            )

    def _repo_refs(self, repo: Path) -> RepoRefs | RepoCheckError:
        if repo not in self._repos:
            try:
                self._repos[repo] = read_repo_refs(repo)
            except RepoCheckError as exc:
                self._repos[repo] = exc
        return self._repos[repo]

    def _check_repo(self, draft: WorkstreamDraft) -> RepoRefs | None:
        """The repository's refs; the workstream's repo becomes its top level."""
        repo = draft.kwargs.get("repo")
        if repo is None:
            return None
        text, path = draft.settings["repo"]
        checked = self._repo_refs(repo)
        if isinstance(checked, RepoCheckError):
            hint = checked.hint
            if checked.problem == "does not exist":
                hint = "check the path; " + self._where_hint(text)
            draft.fail(self.problems, path, f"repo {str(repo)!r} {checked.problem}", hint)
            del draft.kwargs["repo"]
            return None
        draft.kwargs["repo"] = checked.toplevel
        return checked

    def _check_base_branch(self, draft: WorkstreamDraft, refs: RepoRefs) -> None:
        found = draft.settings.get("base_branch")
        if found is None:
            return
        branch, path = found
        remote = draft.kwargs.get("remote", "origin")
        if refs.has_branch(branch, remote):
            return
        suggestion = close(branch, refs.branches)
        shown = ", ".join(refs.branches[:8]) or "none"
        hint = f"did you mean '{suggestion}'? " if suggestion else ""
        hint += f"create it, or run `git fetch {remote}`; branches: {shown}"
        draft.fail(
            self.problems,
            path,
            f"base branch '{branch}' is not in {draft.kwargs['repo']}"
            f" (neither a local branch nor {remote}/{branch})",
            hint,
        )

    def _check_remote(self, draft: WorkstreamDraft, refs: RepoRefs) -> None:
        """Pushing is skipped when the repository has no such remote; only a remote or
        a push the plan asks for by name must exist."""
        remote_found = draft.settings.get("remote")
        push_found = draft.settings.get("push")
        remote = remote_found[0] if remote_found else "origin"
        push = push_found[0] if push_found else True
        asked = remote_found is not None or (push_found is not None and push)
        if not push or not asked or remote in refs.remotes:
            return
        at_path = remote_found[1] if remote_found else push_found[1] if push_found else draft.path
        draft.fail(
            self.problems,
            at_path,
            f"remote '{remote}' is not configured in {draft.kwargs['repo']},"
            " so the branch cannot be pushed",
            f"add it (git remote add {remote} URL), or set `push: false`",
        )

    def _check_worktree_root(self, draft: WorkstreamDraft, refs: RepoRefs | None) -> None:
        root = draft.kwargs.get("worktree_root")
        if root is None:
            return
        path = draft.settings["worktree_root"][1]
        try:
            bad = root.exists() and not root.is_dir()
        except (OSError, ValueError):
            bad = True
        if bad:
            draft.fail(
                self.problems,
                path,
                f"worktree_root {str(root)!r} is not a folder",
                "point it at a folder (it is created when missing)",
            )
            return
        if refs is None:
            return
        # Worktrees inside the checkout show in its `git status`; inside .git, git trips.
        key = (root, refs.toplevel)
        if key not in self._roots:
            self._roots[key] = _root_problem(root, refs)
        found = self._roots[key]
        if found is not None:
            draft.fail(self.problems, path, *found)


def _prompt_file_problem(file: Path) -> _Found:
    """What keeps the run from reading ``file`` as its prompt, and the fix ("" for the usual)."""
    try:
        read_regular_file(file).decode("utf-8")
    except FileReadError as exc:
        if "does not exist" in exc.problem:
            return exc.problem, ""
        if exc.problem == "is a folder, not a regular file":
            return "is a folder, not a file", ""
        return exc.problem, exc.hint
    except UnicodeDecodeError as exc:
        return (
            f"is not UTF-8 text (byte {exc.start + 1} cannot be decoded)",
            "save it as UTF-8 (most editors offer it under 'encoding')",
        )
    return None


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _root_problem(root: Path, refs: RepoRefs) -> _Found:
    """Why worktrees cannot go under ``root`` for the repository ``refs``, and the fix."""
    real = os.path.realpath(root)
    toplevel = Path(os.path.realpath(refs.toplevel))
    outside = f"put it outside the repository, e.g. '{toplevel.parent / 'worktrees'}'"
    for git_dir in refs.git_dirs:
        if _within(real, os.path.realpath(git_dir)):
            return (
                f"worktree_root {str(root)!r} is inside the git folder {git_dir}",
                outside + " (the default)",
            )
    if refs.bare or not _within(real, str(toplevel)):
        return None
    relative = os.path.relpath(real, toplevel)
    if relative != os.curdir and ignores(toplevel, relative):
        return None  # ignored: its worktrees stay out of `git status`
    return (
        f"worktree_root {str(root)!r} is inside the repository {toplevel}:"
        " its worktrees would show as untracked files in `git status`",
        outside
        + " (the default)"
        + (f", or add '{relative}/' to .gitignore" if relative != os.curdir else ""),
    )
