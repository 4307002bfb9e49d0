"""Finishing tells dependents the commit before it reads the commit's diff.

A chain's next link waits on its dependency's commit, not on the diffstat shown
for it: ``WorkReady`` (with the head and the commit it was made on) comes as soon
as the commit is made, ``HeadCommitted`` once its diff is read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mission_control.engine.finish import (
    Committed,
    FinishItem,
    FinishRequest,
    HeadCommitted,
    WorkReady,
    check_and_commit,
)
from mission_control.git.worktrees import prepare_worktree
from mission_control.plan.model import Check

if TYPE_CHECKING:
    from pathlib import Path

    from tests.engine.conftest import GitSandbox


async def _items(sb: GitSandbox, tmp_path: Path, **fields: object) -> list[FinishItem | Committed]:
    ws = sb.ws("A", **fields)
    prepared = prepare_worktree(ws, [])
    sb.write(prepared.path / "a.txt", "a\n")
    request = FinishRequest(
        ws=ws,
        run_id="r1",
        attempt=1,
        worktree=prepared.path,
        base_commit=prepared.base_commit,
        log_path=tmp_path / "attempt-1.log",
        grace_seconds=1.0,
        stop=asyncio.Event(),
    )
    return [item async for item in check_and_commit(request)]


async def test_dependents_hear_of_the_commit_before_its_diff_is_read(
    local_git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = local_git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")

    items = await _items(sb, tmp_path)

    kinds = [type(item).__name__ for item in items]
    assert kinds.index("WorkReady") < kinds.index("HeadCommitted"), kinds
    ready = next(i for i in items if isinstance(i, WorkReady))
    head = next(i for i in items if isinstance(i, HeadCommitted))
    assert (ready.head, ready.holds) == (head.head, base)
    assert head.files == 1


async def test_work_that_failed_a_check_is_never_ready(
    local_git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = local_git_sandbox
    failing = Check(name="lint", argv=["false"])

    items = await _items(sb, tmp_path, checks=[failing])

    assert not any(isinstance(i, WorkReady) for i in items)
    assert any(isinstance(i, HeadCommitted) for i in items)  # still committed: nothing lost
