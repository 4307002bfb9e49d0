"""``status --json`` is a plain dump of the ledger's projection, on a real SQLite ledger.

Every key the JSON had before it became a dump is still there with the same value
(scripts read them); what the ledger does not know (CPU, memory, output idleness, the
plan's timeouts and phase names) is not in it.
"""

from __future__ import annotations

import json
from pathlib import Path

from mission_control.engine.projection import NOT_IN_LEDGER, snapshot_from_ledger, snapshot_json
from mission_control.engine.states import WsState
from mission_control.store.runs import RunStore, WorkstreamRow, process_identity

RUN_KEYS = {
    "run_id",
    "plan_path",
    "plan_name",
    "status",
    "created_at",
    "finished_at",
    "owner",
    "state_dir",
    "workstreams",
}
WORKSTREAM_KEYS = {
    "task_id",
    "phase_id",
    "ws_id",
    "name",
    "tool",
    "depends_on",
    "branch",
    "worktree_path",
    "state",
    "detail",
    "state_at",
    "attempts",
    "base_commit",
    "head_commit",
    "files_changed",
    "insertions",
    "deletions",
    "pr_url",
    "conflicts",
    "log_path",
    "last_attempt",
}
ATTEMPT_KEYS = {
    "attempt",
    "pid",
    "status",
    "started_at",
    "ended_at",
    "exit_code",
    "signal",
    "paused_seconds",
    "log_path",
    "worktree",
    "branch",
    "base_commit",
    "head_commit",
    "argv",
    "env_names",
}


def _ledger(state: Path, plan: Path) -> str:
    rows = [
        WorkstreamRow("P::A", "P", "A", "first", "shell", "ws/P/A", "/wt/P-A"),
        WorkstreamRow("P::B", "P", "B", "second", "shell", "ws/P/B", "/wt/P-B", ("P::A",)),
        WorkstreamRow("Q::C", "Q", "C", "later", "shell", "ws/Q/C", "/wt/Q-C"),
    ]
    with RunStore(state) as store:
        store.create_run("r1", plan, "Plan", {"backend": "local"}, rows, at=100.0)
        store.claim_owner("r1", *process_identity(), at=100.5)
        store.record_state("r1", "P::A", WsState.RUNNING, "attempt 1", 101.0)
        store.start_attempt(
            "r1",
            "P::A",
            1,
            pid=4242,
            pid_create_time=50.0,
            log_path="/logs/a-1.log",
            worktree="/wt/P-A",
            branch="ws/P/A",
            base_commit="base1",
            argv=["agent", "--go"],
            env_names=["API_KEY"],
            started_at=101.5,
        )
        store.end_attempt(
            "r1", "P::A", 1, exit_code=0, signal=None, status="succeeded", ended_at=110.0
        )
        store.update_result(
            "r1",
            "P::A",
            head_commit="head1",
            files_changed=2,
            insertions=7,
            deletions=1,
            pr_url="https://example.test/pr/1",
            conflicts=[("P::B", ["f.txt"])],
            at=111.0,
        )
        store.record_state("r1", "P::A", WsState.SUCCEEDED, "2 files", 112.0)
        store.record_state("r1", "P::B", WsState.PAUSED, "paused by the user", 113.0)
        store.start_attempt(
            "r1",
            "P::B",
            1,
            pid=4343,
            pid_create_time=60.0,
            log_path="/logs/b-1.log",
            worktree="/wt/P-B",
            branch="ws/P/B",
            base_commit=None,
            argv=["agent"],
            env_names=[],
            started_at=112.5,
        )
    return "r1"


def test_status_json_keeps_every_key_it_had_with_the_ledgers_values(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_id = _ledger(state, tmp_path / "plan.yaml")
    with RunStore(state) as store:
        data = snapshot_json(snapshot_from_ledger(store, run_id))
    json.dumps(data)  # plain data only
    assert data.keys() >= RUN_KEYS
    assert data["run_id"] == "r1" and data["status"] == "running"
    assert data["created_at"] == 100.0 and data["finished_at"] is None
    assert data["plan_path"] == str((tmp_path / "plan.yaml").resolve())
    assert data["state_dir"] == str(state)
    assert data["owner"]["alive"] is True and data["owner"]["since"] == 100.5
    a, b, c = data["workstreams"]
    for entry in (a, b, c):
        assert entry.keys() >= WORKSTREAM_KEYS
        assert not NOT_IN_LEDGER & entry.keys()
    assert (a["state"], a["detail"], a["state_at"]) == ("succeeded", "2 files", 112.0)
    assert a["attempts"] == 1 and a["worktree_path"] == "/wt/P-A"
    assert (a["base_commit"], a["head_commit"]) == ("base1", "head1")
    assert (a["files_changed"], a["insertions"], a["deletions"]) == (2, 7, 1)
    assert a["pr_url"] == "https://example.test/pr/1"
    assert a["conflicts"] == [{"with": "P::B", "files": ["f.txt"]}]
    assert a["log_path"] == "/logs/a-1.log"
    assert a["last_attempt"].keys() >= ATTEMPT_KEYS
    assert a["last_attempt"]["argv"] == ["agent", "--go"]
    assert a["last_attempt"]["env_names"] == ["API_KEY"]
    assert a["last_attempt"]["head_commit"] == "head1"  # results go on the latest attempt
    assert a["pid"] is None and a["exit_code"] == 0 and a["ended_at"] == 110.0
    assert b["depends_on"] == ["P::A"] and b["pid"] == 4343 and b["paused_at"] == 113.0
    assert b["ended_at"] is None
    assert c["last_attempt"] is None and c["log_path"] is None and c["state"] == "pending"
    assert data["current_phase"] == "P" and data["finished"] is False and data["ok"] is None


def test_a_finished_run_projects_its_end(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_id = _ledger(state, tmp_path / "plan.yaml")
    with RunStore(state) as store:
        store.release_owner(run_id, process_identity()[0])
        store.finish_run(run_id, "failed", 120.0)
        snapshot = snapshot_from_ledger(store, run_id)
    assert snapshot.finished and snapshot.ok is False and snapshot.finished_at == 120.0
    assert snapshot.owner is None and snapshot.status == "failed"
    assert [p.phase_id for p in snapshot.phases] == ["P", "Q"]
    assert snapshot.phases[0].task_ids == ("P::A", "P::B")
