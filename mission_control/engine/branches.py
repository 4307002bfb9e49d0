"""What a new run does with the branches earlier runs left: stop, build on them, or restart.

Workstream branches have fixed names (``ws/<PHASE>/<WS>``), so a second run of a
plan finds the first one's branches. Re-attaching to them silently piles the new
work on the old (a line appended once per run, then merges that conflict). So
before a new run starts, branches holding commits that are not on their base stop
it, listed, unless the user chose ``continue`` (build on them) or ``fresh`` (start
each from its base; the old tips are kept under ``refs/mission-control/old/``).
Resuming a run is not a new run: it goes on with its own branches.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from ..errors import SetupError
from ..git import worktrees
from ..plan.model import Workstream

ExistingBranches = Literal["refuse", "continue", "fresh"]
"""A new run meeting branches with earlier work: stop, build on them, or restart them."""

EXISTING_BRANCHES: tuple[ExistingBranches, ...] = ("refuse", "continue", "fresh")

FLAGS: dict[ExistingBranches, str] = {"continue": "--continue-branches", "fresh": "--fresh"}
"""The command-line flag that chooses each mode (``refuse`` is the default)."""


def existing_branches(value: object) -> ExistingBranches:
    """A stored mode read back (a run recorded before modes existed: ``refuse``)."""
    return next((mode for mode in EXISTING_BRANCHES if mode == value), "refuse")


def branches_with_work(
    workstreams: Iterable[Workstream],
) -> list[tuple[Workstream, worktrees.EarlierWork]]:
    """The workstreams whose branch holds commits not on its base (blocking)."""
    present: dict[Path, frozenset[str]] = {}  # one listing per repository
    found = []
    for ws in workstreams:
        if ws.repo not in present:
            present[ws.repo] = worktrees.local_branches(ws.repo)
        if ws.branch not in present[ws.repo]:
            continue
        work = worktrees.earlier_work(ws)
        if work is not None and work.commits:
            found.append((ws, work))
    return found


def commits(n: int) -> str:
    return f"{n} commit{'s' if n != 1 else ''}"


def refuse_earlier_work(workstreams: Iterable[Workstream]) -> None:
    """Stop a new run (``SetupError``) when its branches hold earlier runs' commits."""
    found = branches_with_work(workstreams)
    if not found:
        return
    listed = ", ".join(f"{w.branch} ({commits(w.commits)} not on {w.base})" for _, w in found)
    raise SetupError(
        f"this run's branches already hold work of earlier runs: {listed} — pass"
        " --continue-branches to build on it, or --fresh to start from the base"
        f" (old tips kept under {worktrees.OLD_REF_PREFIX})"
    )


def start_afresh(workstreams: Iterable[Workstream], run_id: str) -> list[tuple[str, str]]:
    """Put every existing branch back at its base (``fresh``); (task id, what was done)."""
    done: list[tuple[str, str]] = []
    for ws in workstreams:
        start = worktrees.start_branch_afresh(ws, run_id)
        if start is None:
            continue
        base = start.start_point.removeprefix("refs/remotes/").removeprefix("refs/heads/")
        where = " and its worktree" if start.worktree_reset else ""
        note = f"{ws.branch}{where} started again from {base}"
        if start.kept is not None:
            note += f"; its old tip is kept as {start.kept}"
        done.append((ws.task_id, "; ".join([note, *start.warnings])))
    return done


__all__ = [
    "EXISTING_BRANCHES",
    "FLAGS",
    "ExistingBranches",
    "branches_with_work",
    "existing_branches",
    "refuse_earlier_work",
    "start_afresh",
]
