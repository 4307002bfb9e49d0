"""A dependent's tool runs only on work its dependencies delivered.

A dependent may prepare (make its worktree, merge) as soon as a dependency's
work is committed, while the dependency still pushes; its tool starts only
once every dependency has succeeded. The remote is a real bare repository
whose ``pre-receive`` hook holds or refuses the dependency's push.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from mission_control.engine import events as ev
from mission_control.engine.states import WsState
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws

if TYPE_CHECKING:
    from tests.engine.conftest import GitSandbox


def _hook(sb: GitSandbox, body: str) -> None:
    assert sb.origin is not None
    hook = sb.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(0o755)


def _started(rec: Recorder, task_id: str) -> list[ev.AttemptStarted]:
    return [e for e in rec.events if isinstance(e, ev.AttemptStarted) and e.task_id == task_id]


def _state_at(rec: Recorder, task_id: str, state: WsState) -> float:
    return next(
        e.at
        for e in rec.events
        if isinstance(e, ev.WorkstreamStateChanged) and e.task_id == task_id and e.new is state
    )


async def test_a_dependency_whose_push_fails_never_feeds_its_dependent(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    # The remote refuses A's branch, after a moment (the dependent has started by then).
    _hook(
        sb,
        "while read old new ref; do\n"
        '  if [ "$ref" = refs/heads/ws/P1/A ]; then\n'
        "    sleep 1; echo 'A is not welcome here' >&2; exit 1\n"
        "  fi\n"
        "done\n",
    )
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                3,
                [
                    ws("A", "--write", "a.txt=from A"),
                    ws("B", "--write", "b.txt=from B"),
                    ws("C", "--write", "c.txt=from C", deps=["A"]),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False

    assert rec.states["P1::A"] is WsState.FAILED
    assert "A is not welcome here" in rec.details("P1::A")[-1]
    assert rec.states["P1::B"] is WsState.SUCCEEDED
    assert rec.states["P1::C"] is WsState.BLOCKED
    assert _started(rec, "P1::C") == []  # its tool never ran on A's undelivered commit
    assert sb.origin is not None
    assert sb.git(sb.origin, "branch", "--list", "ws/*").split() == ["ws/P1/B"]


async def test_a_dependent_prepares_early_but_its_tool_waits_for_success(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    c_worktree = sb.worktree_root / "P1-C"
    # A's push is held until C's worktree exists: C prepares while A still pushes.
    _hook(
        sb,
        "i=0\n"
        f'while [ ! -e "{c_worktree}/a.txt" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n'
        "cat >/dev/null\n",
    )
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                2,
                [
                    ws("A", "--write", "a.txt=from A"),
                    ws("C", "--write", "c.txt=from C", deps=["A"]),
                ],
            )
        ],
        worktree_root=str(sb.worktree_root),
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True

    a_succeeded = _state_at(rec, "P1::A", WsState.SUCCEEDED)
    assert _state_at(rec, "P1::C", WsState.PREPARING) < a_succeeded  # prepared early
    [a_pushed] = [
        e.at
        for e in rec.events
        if isinstance(e, ev.FinishStepDone) and e.task_id == "P1::A" and e.step == "push"
    ]
    [c_started] = _started(rec, "P1::C")
    assert c_started.at >= a_pushed  # ... but ran only on delivered (pushed) work
    assert sb.git(sb.repo, "show", "ws/P1/C:a.txt") == "from A"


async def test_a_dependent_waiting_for_its_dependency_can_be_killed(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    release = tmp_path / "release-push"
    # A's push waits for the test: C is prepared and waiting meanwhile.
    _hook(
        sb,
        f'i=0\nwhile [ ! -e "{release}" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n'
        "cat >/dev/null\n",
    )
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                2,
                [
                    ws("A", "--write", "a.txt=from A"),
                    ws("C", "--write", "c.txt=from C", deps=["A"]),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    try:
        await rec.until(
            lambda: any("its tool starts once P1::A succeeded" in d for d in rec.details("P1::C"))
        )
        await engine.kill("P1::C")
        await rec.state("P1::C", WsState.KILLED)
    finally:
        release.touch()
    assert await asyncio.wait_for(run, 120) is False
    assert rec.states["P1::A"] is WsState.SUCCEEDED
    assert _started(rec, "P1::C") == []
