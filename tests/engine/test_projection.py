"""The ledger's projection of a run equals what the live views showed, before and after resume.

A real plan runs through ``Engine`` on a real repository (origin a bare repository, ``gh``
the stand-in): one workstream opens a pull request, one is forecast to conflict with it,
one fails and one is blocked behind it. The views fold the engine's events; the
projection reads only the ledger. They must agree on everything the ledger knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mission_control.engine.projection import snapshot_from_ledger, snapshot_json
from mission_control.engine.snapshot import RunSnapshot, WorkstreamView
from mission_control.engine.states import WsState
from mission_control.plan.model import Plan
from mission_control.store.runs import RunStore
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws
from tests.helpers import mc_argv, run_leftovers, wait_for_pids

if TYPE_CHECKING:
    from tests.engine.conftest import GitSandbox

SHARED = (
    "task_id",
    "phase_id",
    "ws_id",
    "name",
    "tool",
    "depends_on",
    "timeout_seconds",
    "branch",
    "worktree",
    "state",
    "detail",
    "attempt",
    "pid",
    "log_path",
    "started_at",
    "ended_at",
    "exit_code",
    "signal",
    "head",
    "files_changed",
    "insertions",
    "deletions",
    "pr_url",
    "conflicts",
)
"""What a live view and the projection both hold of a workstream."""


def _sh(ws_id: str, line: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": ws_id,
        "name": f"workstream {ws_id}",
        "tool": "shell",
        "command": [line],
        "shell": True,
        **extra,
    }


def _plan(sb: GitSandbox, folder: Path) -> Plan:
    edit = "sed -i 's/^line 1$/{}/' f.txt"
    return write_plan(
        folder,
        sb.repo,
        [
            (
                "P1",
                1,  # one at a time: B finishes after A, and is forecast against it
                [
                    _sh("A", edit.format("A was here")),
                    _sh("B", edit.format("B was here"), pr={"enabled": False}),
                    _sh("F", "echo failing; exit 3", pr={"enabled": False}),
                    _sh("G", "echo never", depends_on=["P1::F"], pr={"enabled": False}),
                ],
            ),
            ("P2", 2, [_sh("H", "echo later", pr={"enabled": False})]),
        ],
    )


def _workstreams(snapshot: RunSnapshot) -> dict[str, dict[str, Any]]:
    return {
        task_id: {name: getattr(view, name) for name in SHARED}
        for task_id, view in snapshot.workstreams.items()
    }


def _spawned(live: dict[str, Any], projected: dict[str, Any]) -> bool:
    """The live start is the spawn after the recorded start (generous: a loaded machine)."""
    return bool(0 <= live["started_at"] - projected["started_at"] < 30)


def _run_level(snapshot: RunSnapshot) -> dict[str, Any]:
    return {
        "run_id": snapshot.run_id,
        "plan_path": snapshot.plan_path,
        "plan_name": snapshot.plan_name,
        "phases": snapshot.phases,
        "current_phase": snapshot.current_phase,
        "finished": snapshot.finished,
        "ok": snapshot.ok,
        "backend": snapshot.backend,
    }


def _assert_same(
    live: RunSnapshot, projected: RunSnapshot, *, watched: bool = False, spawned: bool = False
) -> None:
    """``watched``: the views watched the run from its start, and differ from the ledger
    in two known ways. They took an attempt's start from the moment its process was
    spawned, the ledger from the moment just before (recorded first, in case of a crash
    in between); and they keep the last phase they saw start after the run ended, where
    the projection says which phase runs now (none). ``spawned``: only the first, for
    the attempts these views saw spawned (a resumed run's new ones)."""
    run_level = _run_level(live)
    if watched:
        run_level["current_phase"] = None
    assert _run_level(projected) == run_level
    seen, got = _workstreams(live), _workstreams(projected)
    assert seen.keys() == got.keys()
    diffs = [
        f"{task_id}.{name}: live {seen[task_id][name]!r}, projected {got[task_id][name]!r}"
        for task_id in seen
        for name in SHARED
        if seen[task_id][name] != got[task_id][name]
        and not (
            (watched or spawned) and name == "started_at" and _spawned(seen[task_id], got[task_id])
        )
    ]
    assert diffs == [], "\n".join(diffs)


async def test_projection_equals_the_live_views_before_and_after_resume(
    git_sandbox: GitSandbox, fake_gh: Path, tmp_path: Path
) -> None:
    sb = git_sandbox
    plan = _plan(sb, tmp_path)
    state = tmp_path / "state"
    engine = make_engine(plan, state)
    rec = Recorder(engine)
    assert await engine.run() is False, rec.states
    run_id = engine.run_id
    live = engine.snapshot()
    views: dict[str, WorkstreamView] = live.workstreams
    # The run did what the test needs: a PR, a conflict, a failure, a block.
    assert views["P1::A"].pr_url and views["P1::A"].head and views["P1::A"].files_changed == 1
    assert views["P1::B"].conflicts == (("P1::A", ("f.txt",)),)
    assert views["P1::F"].state is WsState.FAILED and views["P1::F"].exit_code == 3
    assert views["P1::G"].state is WsState.BLOCKED and views["P2::H"].state is WsState.PENDING

    with RunStore(state) as store:
        _assert_same(live, snapshot_from_ledger(store, run_id, plan), watched=True)

    resumed = make_engine(plan, state, run_id=run_id)
    rec = Recorder(resumed)
    assert await resumed.run() is False, rec.states
    after = resumed.snapshot()
    with RunStore(state) as store:
        projected = snapshot_from_ledger(store, run_id, plan)
    _assert_same(after, projected)

    # status --json is a plain dump of the same projection.
    data = snapshot_json(projected)
    by_id = {w["task_id"]: w for w in data["workstreams"]}
    assert by_id["P1::A"]["pr_url"] == views["P1::A"].pr_url
    assert by_id["P1::B"]["conflicts"] == [{"with": "P1::A", "files": ["f.txt"]}]
    assert by_id["P1::F"]["exit_code"] == 3 and by_id["P1::G"]["state"] == "blocked"


async def test_projection_of_a_resumed_run_shows_the_adopted_agent_as_the_views_do(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    """The driver is SIGKILLed while an agent runs; the resumed engine adopts it. Its
    views and the projection agree on the live attempt: pid, log, start, state."""
    sb = git_sandbox
    pid_file = tmp_path / "pids.jsonl"
    long = ws("A", "--pid-file", str(pid_file), "--lines", "-1", "--rate", "20")
    plan = write_plan(
        tmp_path,
        sb.repo,
        [("P1", 2, [long, ws("B", "--exit", "3", pr={"enabled": False})])],
        pr={"enabled": False},
    )
    state = tmp_path / "state"
    first = subprocess.Popen(
        mc_argv("run", str(plan.path), "--headless", state=state),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_pids(pid_file, {"main": 1}, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with RunStore(state) as store:
        record = store.latest_run()
    assert record is not None
    run_id = record.run_id
    engine = make_engine(plan, state, run_id=run_id, linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    try:
        ended = (WsState.FAILED, WsState.SUCCEEDED)
        await rec.until(
            lambda: rec.states.get("P1::A") is WsState.RUNNING and rec.states.get("P1::B") in ended,
            timeout=60,
        )
        live = engine.snapshot()
        assert live.workstreams["P1::A"].pid is not None
        assert "adopted" in rec.details("P1::A")[-1]
        with RunStore(state) as store:
            projected = snapshot_from_ledger(store, run_id, plan)
        # B may have had no attempt when the driver died: then the resumed run spawned it.
        _assert_same(live, projected, spawned=True)
        assert projected.owner is not None and projected.owner.alive
    finally:
        await engine.cancel(kill=True)
        await run
        for pid in run_leftovers(run_id):  # a failed assertion must not leave the agent behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
