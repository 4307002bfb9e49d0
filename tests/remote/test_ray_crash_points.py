"""Crash safety on a Ray cluster at the worst moments: the driver SIGKILLs itself at a
named step (``MC_CRASH_AT``: a ledger write, or as a node's work comes back), then
``resume`` takes the run over. Every workstream ends with exactly its own work on
the remote, every attempt row is ended and no actor is left on the cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mission_control.engine.projection import snapshot_from_ledger, snapshot_json
from mission_control.store.runs import RunStore
from tests.conftest import GitRepo
from tests.engine.engine_helpers import write_plan
from tests.helpers import mc_argv

pytestmark = pytest.mark.slow

POINTS = [
    ("ledger.written", 14),
    ("remote.finished", 1),
    ("remote.work_returned", 2),
]

WORK = {"A": [], "B": ["A"], "C": []}


def _cluster_address() -> str:
    import ray

    return str(ray.get_runtime_context().gcs_address)


def _live_actors(run_id: str) -> list[str]:
    import ray

    return [n for n in ray.util.list_named_actors() if n.startswith(f"mc/{run_id}/")]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("point", "occurrence"), POINTS, ids=[f"{p}@{n}" for p, n in POINTS])
def test_driver_killed_at_a_step_then_resumed_on_the_cluster(
    git_repo: GitRepo, tmp_path: Path, ray_cluster: Path, point: str, occurrence: int
) -> None:
    assert git_repo.origin is not None
    workstreams = [
        {
            "id": ws_id,
            "name": f"workstream {ws_id}",
            "tool": "shell",
            "shell": True,
            "command": f"mkdir -p out && printf '{ws_id} was here' > out/{ws_id}.txt",
            "depends_on": deps,
        }
        for ws_id, deps in WORK.items()
    ]
    plan = write_plan(tmp_path, git_repo.path, [("P", 2, workstreams)], pr=False)
    state = tmp_path / "state"
    backend = ["--backend", "ray", "--ray-address", _cluster_address()]
    crashed = subprocess.run(
        mc_argv("run", str(plan.path), "--headless", *backend, state=state),
        env={**os.environ, "MC_CRASH_AT": f"{point}@{occurrence}"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stdout)

    resumed = subprocess.run(
        mc_argv("resume", "--headless", state=state), capture_output=True, text=True, timeout=180
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    with RunStore(state) as store:
        run = store.latest_run()
        assert run is not None
        status = snapshot_json(snapshot_from_ledger(store, run.run_id))
    run_id = status["run_id"]
    assert status["status"] == "succeeded", status
    base_files = set(git_repo.git("ls-tree", "-r", "--name-only", "main").split())
    for w in status["workstreams"]:
        ws_id, branch = w["ws_id"], w["branch"]
        assert w["state"] == "succeeded", w
        files = set(
            git_repo.git("ls-tree", "-r", "--name-only", branch, cwd=git_repo.origin).split()
        )
        assert files == base_files | {f"out/{d}.txt" for d in [ws_id, *WORK[ws_id]]}, files
        shown = git_repo.git("show", f"{branch}:out/{ws_id}.txt", cwd=git_repo.origin)
        assert shown == f"{ws_id} was here"
        commits = git_repo.git(
            "log", "--format=%H", branch, "--", f"out/{ws_id}.txt", cwd=git_repo.origin
        ).split()
        assert len(commits) == 1, (ws_id, commits)
    with RunStore(state) as store:
        assert [a for a in store.attempts(run_id) if a.ended_at is None] == []
    deadline = time.monotonic() + 60
    while _live_actors(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _live_actors(run_id) == []
