"""The worktree list and the base ref: what every worktree operation looks up first.

``git worktree list --porcelain`` is the one place git says which folder holds
which branch; the recorded base ref says where a workstream's work began.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .repo import (
    run_git,
)

BASE_REF_PREFIX = "refs/mission-control/base/"


def base_ref(branch: str) -> str:
    """Where the base commit of ``branch`` is recorded."""
    return BASE_REF_PREFIX + branch


@dataclass(frozen=True, slots=True)
class WorktreeEntry:
    """One line of ``git worktree list``."""

    path: Path
    head: str | None
    branch: str | None
    """Full ref name (``refs/heads/...``), None when detached or bare."""
    bare: bool = False
    locked: bool = False
    prunable: bool = False
    lock_reason: str = ""


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    """Every worktree of ``repo``, the main one first."""
    out = run_git(["worktree", "list", "--porcelain", "-z"], repo, what="listing worktrees").stdout
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for item in out.split("\0"):
        if item:
            key, _, value = item.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            entries.append(
                WorktreeEntry(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=fields.get("branch"),
                    bare="bare" in fields,
                    locked="locked" in fields,
                    prunable="prunable" in fields,
                    lock_reason=fields.get("locked", ""),
                )
            )
        fields = {}
    return entries


def same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())
