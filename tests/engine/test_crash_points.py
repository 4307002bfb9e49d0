"""Crash safety at the worst moments: mission-control SIGKILLs itself at a named step
inside worktree creation, the finishing steps or a ledger write (``MC_CRASH_AT``),
then ``resume`` takes the run over. Every workstream must end with exactly its own
work on its branch and on the remote: nothing deleted, nothing done twice, no
process left, every attempt row ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mission_control.engine.projection import snapshot_from_ledger, snapshot_json
from mission_control.store.runs import RunStore
from tests.helpers import agent_argv, mc_argv, run_leftovers

from .conftest import GitSandbox, git

# (place, occurrence): each is reached by a run of the plan below, most of them by
# every workstream, so an occurrence past the first dies with others half-way too.
pytestmark = pytest.mark.slow

POINTS = [
    ("worktree.registering", 1),
    ("worktree.added", 1),
    ("worktree.filled", 2),
    ("worktree.merged", 1),
    ("finish.checked", 1),
    ("finish.committed", 2),
    ("finish.pushed", 1),
    ("finish.pr_opened", 2),
    ("ledger.write", 12),
    ("ledger.written", 20),
]

WORK = {"A": [], "B": ["A"], "C": []}


def _plan(sb: GitSandbox) -> Path:
    workstreams = [
        {
            "id": ws_id,
            "name": f"workstream {ws_id}",
            "tool": "shell",
            "command": agent_argv("--lines", "3", "--write", f"out/{ws_id}.txt={ws_id} was here"),
            "depends_on": deps,
            "checks": ["test -f README.md"],
        }
        for ws_id, deps in WORK.items()
    ]
    doc: dict[str, Any] = {
        "version": 1,
        "name": "crash points",
        "defaults": {
            "repo": str(sb.repo),
            "base_branch": "main",
            "timeout_minutes": 2,
            "worktree_root": str(sb.worktree_root),
        },
        "phases": [
            {"id": "P1", "name": "one", "max_parallel_workstreams": 2, "workstreams": workstreams}
        ],
    }
    path = sb.tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _files(sb: GitSandbox, ref: str, cwd: Path) -> set[str]:
    return set(git(cwd, "ls-tree", "-r", "--name-only", ref).split())


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("point", "occurrence"), POINTS, ids=[f"{p}@{n}" for p, n in POINTS])
def test_killed_at_a_step_then_resumed_loses_and_repeats_nothing(
    git_sandbox: GitSandbox, fake_gh: Path, point: str, occurrence: int
) -> None:
    sb = git_sandbox
    assert sb.origin is not None
    state = sb.tmp / "state"
    plan = _plan(sb)
    base_files = _files(sb, "main", sb.repo)

    env = {**os.environ, "MC_CRASH_AT": f"{point}@{occurrence}"}
    crashed = subprocess.run(
        mc_argv("run", str(plan), "--headless", state=state),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)

    resumed = subprocess.run(
        mc_argv("run", str(plan), "--resume", "--headless", state=state),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    with RunStore(state) as store:
        run = store.latest_run()
        assert run is not None
        status = snapshot_json(snapshot_from_ledger(store, run.run_id))
    run_id = status["run_id"]
    assert status["status"] == "succeeded", status
    by_id = {w["ws_id"]: w for w in status["workstreams"]}
    assert set(by_id) == set(WORK)
    for ws_id, deps in WORK.items():
        w = by_id[ws_id]
        assert w["state"] == "succeeded", w
        branch = w["branch"]
        for where in (sb.repo, sb.origin):
            files = _files(sb, branch, where)
            # nothing of the base deleted; its own file, and its dependencies' files
            expected = base_files | {f"out/{d}.txt" for d in [ws_id, *deps]}
            assert files == expected, (where, branch, files)
            text = git(where, "show", f"{branch}:out/{ws_id}.txt")
            assert text == f"{ws_id} was here", text
        # exactly one commit of its work, however often it was started
        commits = git(sb.repo, "log", "--format=%H", branch, "--", f"out/{ws_id}.txt").split()
        assert len(commits) == 1, (ws_id, commits)
        assert git(sb.origin, "rev-parse", branch) == git(sb.repo, "rev-parse", branch)
    with RunStore(state) as store:
        open_rows = [(a.task_id, a.attempt) for a in store.attempts(run_id) if a.ended_at is None]
    assert open_rows == []
    assert run_leftovers(run_id) == []
    # the user's checkout is as it was: still on main, nothing added
    assert git(sb.repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(sb.repo, "status", "--porcelain") == ""
