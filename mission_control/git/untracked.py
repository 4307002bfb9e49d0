"""Files the repository does not track, brought from its checkout into a new worktree.

A fresh worktree has the tracked files only: no ``.env``, no ``node_modules``.
The plan's ``copy:`` and ``link:`` patterns and the repository's
``.worktreeinclude`` (gitignore syntax; as in Claude Code, only files git
ignores are taken from it) name what to bring. git itself matches the patterns
(``ls-files --others --ignored``), so they mean what they mean in a
``.gitignore``.

Nothing is taken from outside the repository's checkout: a symlink that leads
out of it is skipped, never followed, and so is a FIFO, a socket or a device;
nothing is written outside the worktree. Every skip is a note for the attempt's
log. What was brought is listed in the worktree's git dir (``BROUGHT_FILE``),
so the commit of the work leaves it out.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .repo import run_git, worktree_file

INCLUDE_FILE = ".worktreeinclude"
BROUGHT_FILE = "mission-control-brought"
"""In the worktree's git dir: one path a line, relative to the worktree."""


@dataclass(slots=True)
class Brought:
    """What bringing untracked files into one worktree did."""

    copied: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, why) for each thing left behind."""

    def lines(self) -> list[str]:
        """The notes for the attempt's log."""
        done = [f"copied {_some(self.copied)}"] if self.copied else []
        done += [f"linked {_some(self.linked)}"] if self.linked else []
        out = [f"──── files: {'; '.join(done)}"] if done else []
        out += [f"──── files: skipped {path}: {why}" for path, why in self.skipped]
        return out


def _some(paths: list[str], shown: int = 20) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def bring_untracked(
    repo: Path, worktree: Path, copy: Sequence[str], link: Sequence[str], *, record: bool = True
) -> Brought:
    """Copy (``copy``, ``.worktreeinclude``) and symlink (``link``) untracked files (blocking).

    ``record=False`` for a folder that is not a worktree (files packed for a node)."""
    repo, worktree = Path(os.path.realpath(repo)), Path(os.path.abspath(worktree))
    to_link = matching_untracked(repo, link)
    to_copy = [p for p in matching_untracked(repo, copy) if p not in to_link]
    to_copy += [p for p in _included(repo) if p not in to_copy and p not in to_link]
    brought = Brought()
    for rel in to_copy:
        _bring(repo, worktree, rel, brought, link=False)
    for rel in to_link:
        _bring(repo, worktree, rel, brought, link=True)
    if record:
        remember_brought(worktree, brought.copied + brought.linked)
    return brought


def remember_brought(worktree: Path, paths: Sequence[str]) -> None:
    """List what was brought in the worktree's git dir, for the commit to leave out."""
    if paths:
        text = "".join(f"{p}\n" for p in paths)
        worktree_file(worktree, BROUGHT_FILE).write_text(text, encoding="utf-8")


def brought_paths(worktree: Path) -> list[str]:
    """The paths ``bring_untracked`` put in ``worktree`` (none when it brought nothing)."""
    try:
        text = worktree_file(worktree, BROUGHT_FILE).read_text(encoding="utf-8")
    except OSError:
        return []
    return [line for line in text.splitlines() if line]


def brought_not_ignored(worktree: Path) -> list[str]:
    """What was brought into ``worktree`` that git would stage (not ignored there)."""
    paths = brought_paths(worktree)
    if not paths:
        return []
    ignored = _ignored(worktree, paths)
    return [p for p in paths if p not in ignored]


def _ignored(cwd: Path, paths: Sequence[str]) -> set[str]:
    out = run_git(
        ["check-ignore", "--stdin", "-z"], cwd, check=False, input_text="\0".join(paths) + "\0"
    )
    return {entry.rstrip("/") for entry in out.stdout.split("\0") if entry}


def matching_untracked(
    repo: Path, patterns: Iterable[str], *, whole_folders: bool = True
) -> list[str]:
    """Untracked paths of ``repo`` matching gitignore-style ``patterns`` (a folder whole,
    unless ``whole_folders`` is False: then each file)."""
    args = ["ls-files", "--others", "--ignored", "-z"]
    if whole_folders:
        args += ["--directory", "--no-empty-directory"]
    patterns = [p for p in patterns if p.strip()]
    if not patterns:
        return []
    for pattern in patterns:
        args += ["--exclude", pattern]
    out = run_git(args, repo, what="listing untracked files to bring")
    found = sorted({entry.rstrip("/") for entry in out.stdout.split("\0") if entry})
    # A folder listed with entries inside it: the entries are what matched.
    return [p for p in found if not any(q.startswith(p + "/") for q in found)]


def _included(repo: Path) -> list[str]:
    """What ``.worktreeinclude`` names that git ignores."""
    include = repo / INCLUDE_FILE
    if include.is_symlink() or not include.is_file():
        return []
    try:
        lines = include.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    candidates = matching_untracked(repo, patterns, whole_folders=False)
    if not candidates:
        return []
    ignored = _ignored(repo, candidates)
    return [p for p in candidates if p in ignored]


def _inside(path: str, folder: Path) -> bool:
    return path == str(folder) or path.startswith(str(folder) + os.sep)


def _bring(repo: Path, worktree: Path, rel: str, brought: Brought, *, link: bool) -> None:
    source = repo / rel
    target = worktree / rel
    real = Path(os.path.realpath(source))
    if _inside(str(real), worktree) or _inside(str(worktree), real):
        return  # the worktrees' own folder, ignored inside the repository
    why = _unsafe(source, repo)
    if why is None and (target.exists() or target.is_symlink()):
        why = "already in the worktree"
    if why is None and not _inside(os.path.realpath(target.parent), Path(worktree)):
        why = "its folder in the worktree leads outside it"
    if why is not None:
        brought.skipped.append((rel, why))
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if link:
            target.symlink_to(os.path.realpath(source))
            brought.linked.append(rel)
        else:
            _copy(source, target, repo, rel, brought)
            brought.copied.append(rel)
    except OSError as err:
        brought.skipped.append((rel, f"cannot be brought: {err.strerror or err}"))


def _unsafe(source: Path, repo: Path) -> str | None:
    """Why ``source`` must not be brought, or None."""
    try:
        mode = source.lstat().st_mode
    except OSError:
        return "gone"
    if stat.S_ISLNK(mode):
        if not _inside(os.path.realpath(source), repo):
            return "a symlink that leads out of the repository"
        return None
    return _kind_refused(mode)


def _kind_refused(mode: int) -> str | None:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def _copy(source: Path, target: Path, repo: Path, rel: str, brought: Brought) -> None:
    """Copy a file, a symlink that stays in the repository, or a folder, entry by entry."""
    mode = source.lstat().st_mode
    if stat.S_ISLNK(mode):
        target.symlink_to(os.readlink(source))
    elif stat.S_ISDIR(mode):
        target.mkdir()
        for child in sorted(os.listdir(source)):
            child_rel = f"{rel}/{child}"
            why = _unsafe(source / child, repo)
            if why is not None:
                brought.skipped.append((child_rel, why))
                continue
            _copy(source / child, target / child, repo, child_rel, brought)
    elif stat.S_ISREG(mode):
        shutil.copy2(source, target, follow_symlinks=False)
