"""The run ledger on real SQLite files, with real processes for ownership and crashes."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mission_control.engine.projection import snapshot_from_ledger, snapshot_json
from mission_control.engine.states import WsState
from mission_control.errors import SetupError
from mission_control.plan.model import Workstream
from mission_control.store.runs import (
    DB_NAME,
    SCHEMA_VERSION,
    RunRecord,
    RunStore,
    WorkstreamRow,
    new_run_id,
    process_alive,
    process_identity,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _rows() -> list[WorkstreamRow]:
    return [
        WorkstreamRow(
            task_id=f"PH-1::WS-{c}",
            phase_id="PH-1",
            ws_id=f"WS-{c}",
            name=f"Workstream {c}",
            tool="shell",
            branch=f"ws/PH-1/WS-{c}",
            worktree_path=f"/tmp/wt/PH-1-WS-{c}",
            depends_on=("PH-1::WS-A",) if c != "A" else (),
        )
        for c in "ABC"
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / ".mission-control")
    yield s
    s.close()


def _make_run(store: RunStore, plan: Path, run_id: str | None = None, at: float = 1000.0) -> str:
    rid = run_id or new_run_id(at)
    store.create_run(rid, plan, "Demo plan", {"max_parallel": 2}, _rows(), at=at)
    return rid


def test_new_store_is_wal_and_versioned(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    RunStore(state).close()
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    # Reopening an existing store keeps its data and version.
    with RunStore(state) as s:
        assert s.list_runs() == []


def test_a_version_2_ledger_gains_the_landing_tables_and_keeps_its_runs(tmp_path: Path) -> None:
    with RunStore(tmp_path) as s:
        rid = _make_run(s, tmp_path / "plan.yaml")
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("DROP TABLE landing_merges")
    conn.execute("DROP TABLE landings")
    conn.execute("ALTER TABLE attempts DROP COLUMN ports")  # version 4's
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    with RunStore(tmp_path) as s:
        assert [r.run_id for r in s.list_runs()] == [rid]
        landing = s.start_landing(
            rid, "P", "mc/land/P", repo="r", worktree="w", base_ref="main", base_commit="c",
            checks_mode="each", branches=[("P::A", "ws/P/A")],
        )  # fmt: skip
        assert [m.state for m in s.landing_merges(landing)] == ["pending"]
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    RunStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(SetupError, match="newer mission-control"):
        RunStore(tmp_path)


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(SetupError, match=r"state\.db.*--state-dir"):
        RunStore(tmp_path)


def test_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SetupError, match="--state-dir"):
        RunStore(blocker / "state")


def test_run_ids_sort_by_time() -> None:
    a = new_run_id(1_800_000_000.0)
    b = new_run_id(1_800_000_061.0)
    assert a < b
    assert len(a.split("-")) == 3 and "::" not in a


def test_create_and_read_a_run(store: RunStore, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    rid = _make_run(store, plan)
    run = store.get_run(rid)
    assert run is not None
    assert run.plan_path == str(plan.resolve())
    assert run.plan_name == "Demo plan"
    assert run.options == {"max_parallel": 2}
    assert run.status == "running" and not run.finished
    wss = store.workstreams(rid)
    assert [w.task_id for w in wss] == ["PH-1::WS-A", "PH-1::WS-B", "PH-1::WS-C"]
    assert all(w.state is WsState.PENDING for w in wss)
    assert wss[1].depends_on == ("PH-1::WS-A",)
    assert wss[2].branch == "ws/PH-1/WS-C"
    assert store.get_run("nope") is None
    assert [e.kind for e in store.events(rid)] == ["run_created"]


def test_latest_and_list_runs(store: RunStore, tmp_path: Path) -> None:
    p1, p2 = tmp_path / "one.yaml", tmp_path / "two.yaml"
    r1 = _make_run(store, p1, "r1", at=100.0)
    r2 = _make_run(store, p2, "r2", at=200.0)
    r3 = _make_run(store, p1, "r3", at=300.0)
    store.finish_run(r3, "succeeded", 310.0)
    assert [r.run_id for r in store.list_runs()] == [r3, r2, r1]
    assert [r.run_id for r in store.list_runs(limit=2)] == [r3, r2]
    latest = store.latest_run()
    assert latest is not None and latest.run_id == r3
    by_plan = store.resumable_run(plan_path=p1)
    assert by_plan is not None and by_plan.run_id == r1
    # a relative spelling of the same plan finds it too
    rel = os.path.relpath(p2)
    assert (store.latest_run(plan_path=rel) or by_plan).run_id == r2
    finished = store.get_run(r3)
    assert finished is not None and finished.finished and finished.status == "succeeded"
    store.reopen_run(r3, 400.0)
    again = store.resumable_run()
    assert again is not None and again.run_id == r3
    with pytest.raises(KeyError):
        store.finish_run("missing", "failed", 1.0)


def _id(record: RunRecord | None) -> str | None:
    return None if record is None else record.run_id


def test_resumable_run_is_unfinished_or_stopped_and_of_its_plan(
    store: RunStore, tmp_path: Path
) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    stopped = _make_run(store, one, "stopped", at=100.0)
    store.finish_run(stopped, "cancelled", 110.0)
    crashed = _make_run(store, two, "crashed", at=200.0)  # never finished: its driver died
    done = _make_run(store, two, "done", at=300.0)
    store.finish_run(done, "succeeded", 310.0)

    assert _id(store.resumable_run(one)) == stopped
    assert _id(store.resumable_run(two)) == crashed
    assert _id(store.resumable_run()) == crashed
    failed = _make_run(store, one, "failed", at=400.0)
    store.finish_run(failed, "failed", 410.0)
    # A later run of the plan replaced the stopped one: resuming it would redo its work.
    assert store.resumable_run(one) is None
    interrupted = _make_run(store, one, "interrupted", at=500.0)
    store.finish_run(interrupted, "interrupted", 510.0)
    assert _id(store.resumable_run(one)) == interrupted
    assert _id(store.resumable_run()) == interrupted


def test_record_state_updates_row_and_appends_event(store: RunStore, tmp_path: Path) -> None:
    rid = _make_run(store, tmp_path / "p.yaml")
    old = store.record_state(rid, "PH-1::WS-A", WsState.QUEUED, "", 1001.0)
    assert old is WsState.PENDING
    old = store.record_state(rid, "PH-1::WS-A", WsState.RUNNING, "attempt 1", 1002.0)
    assert old is WsState.QUEUED
    ws = store.workstream(rid, "PH-1::WS-A")
    assert ws is not None
    assert (ws.state, ws.detail, ws.state_at) == (WsState.RUNNING, "attempt 1", 1002.0)
    events = store.events(rid)
    states = [e for e in events if e.kind == "state"]
    assert [(e.payload["old"], e.payload["new"]) for e in states] == [
        ("pending", "queued"),
        ("queued", "running"),
    ]
    assert states[-1].task_id == "PH-1::WS-A" and states[-1].at == 1002.0
    # tailing: only events after the last id seen
    assert store.events(rid, after_id=states[0].id) == [states[1]]
    with pytest.raises(KeyError):
        store.record_state(rid, "PH-1::WS-Z", WsState.QUEUED, "", 1.0)


def test_attempts_results_and_ledger(store: RunStore, tmp_path: Path) -> None:
    rid = _make_run(store, tmp_path / "p.yaml")
    task = "PH-1::WS-B"
    store.start_attempt(
        rid,
        task,
        1,
        pid=None,
        pid_create_time=None,
        log_path=tmp_path / "attempt-1.log",
        worktree="/tmp/wt/PH-1-WS-B",
        branch="ws/PH-1/WS-B",
        base_commit="aaa111",
        argv=["aider", "--yes"],
        env_names=["OPENAI_API_KEY"],
        started_at=1010.0,
    )
    store.update_attempt_pid(rid, task, 1, 4242, 1009.5, 1010.1)
    store.end_attempt(
        rid, task, 1, exit_code=None, signal=9, status="killed", ended_at=1020.0, paused_seconds=3.5
    )
    store.start_attempt(
        rid,
        task,
        2,
        pid=4343,
        pid_create_time=1030.0,
        log_path=tmp_path / "attempt-2.log",
        worktree="/tmp/wt/PH-1-WS-B",
        branch="ws/PH-1/WS-B",
        base_commit=None,
        argv=["aider", "--yes"],
        env_names=[],
        started_at=1030.0,
    )
    store.update_result(
        rid,
        task,
        head_commit="bbb222",
        files_changed=3,
        insertions=10,
        deletions=2,
        pr_url="https://example.invalid/pr/1",
        conflicts=[("PH-1::WS-C", ["src/a.py", "src/b.py"])],
        at=1040.0,
    )
    store.end_attempt(rid, task, 2, exit_code=0, signal=None, status="succeeded", ended_at=1050.0)
    store.record_state(rid, task, WsState.SUCCEEDED, "", 1051.0)

    atts = store.attempts(rid, task)
    assert [a.attempt for a in atts] == [1, 2]
    first, second = atts
    assert (first.pid, first.pid_create_time, first.signal, first.status) == (
        4242,
        1009.5,
        9,
        "killed",
    )
    assert first.paused_seconds == 3.5 and first.env_names == ("OPENAI_API_KEY",)
    assert first.head_commit is None and first.base_commit == "aaa111"
    assert second.head_commit == "bbb222" and second.exit_code == 0
    assert store.attempts(rid) == atts  # the only attempts of the run
    assert all(a.ended_at is not None for a in atts)

    ws = store.workstream(rid, task)
    assert ws is not None
    assert ws.attempts == 2 and ws.base_commit == "aaa111" and ws.head_commit == "bbb222"
    assert (ws.files_changed, ws.insertions, ws.deletions) == (3, 10, 2)
    assert ws.conflicts == (("PH-1::WS-C", ("src/a.py", "src/b.py")),)

    # only the fields given change
    store.update_result(rid, task, pr_url=None, at=1060.0)
    ws = store.workstream(rid, task)
    assert ws is not None and ws.pr_url is None and ws.head_commit == "bbb222"

    ledger = snapshot_json(snapshot_from_ledger(store, rid))
    json.dumps(ledger)  # plain data only
    assert ledger["run_id"] == rid and ledger["status"] == "running"
    entry = {w["task_id"]: w for w in ledger["workstreams"]}[task]
    assert entry["branch"] == "ws/PH-1/WS-B"
    assert entry["worktree_path"] == "/tmp/wt/PH-1-WS-B"
    assert entry["state"] == "succeeded" and entry["attempts"] == 2
    assert entry["conflicts"] == [{"with": "PH-1::WS-C", "files": ["src/a.py", "src/b.py"]}]
    assert entry["log_path"] == str(tmp_path / "attempt-2.log")
    assert entry["last_attempt"]["attempt"] == 2
    untouched = {w["task_id"]: w for w in ledger["workstreams"]}["PH-1::WS-A"]
    assert untouched["last_attempt"] is None and untouched["state"] == "pending"
    kinds = [e.kind for e in store.events(rid)]
    assert kinds.count("attempt_started") == 2 and kinds.count("attempt_ended") == 2
    assert "attempt_pid" in kinds and kinds.count("result") == 2


def test_env_values_never_reach_the_database(tmp_path: Path) -> None:
    secret = "sk-live-THIS-MUST-NOT-BE-STORED-0123456789"
    state = tmp_path / "state"
    with RunStore(state) as s:
        s.create_run(
            "r1",
            tmp_path / "p.yaml",
            "Plan",
            {"env": {"OPENAI_API_KEY": secret}, "nested": {"env": {"TOKEN": secret}}},
            _rows(),
            at=1.0,
        )
        run = s.get_run("r1")
        assert run is not None
        assert run.options == {"env": ["OPENAI_API_KEY"], "nested": {"env": ["TOKEN"]}}
        with pytest.raises(ValueError) as err:
            s.start_attempt(
                "r1",
                "PH-1::WS-A",
                1,
                pid=1,
                pid_create_time=1.0,
                log_path="l",
                worktree="w",
                branch="b",
                base_commit=None,
                argv=["x"],
                env_names=["PATH", f"OPENAI_API_KEY={secret}"],
                started_at=2.0,
            )
        assert secret not in str(err.value)
        s.start_attempt(
            "r1",
            "PH-1::WS-A",
            1,
            pid=1,
            pid_create_time=1.0,
            log_path="l",
            worktree="w",
            branch="b",
            base_commit=None,
            argv=["x"],
            env_names=["OPENAI_API_KEY"],
            started_at=2.0,
        )
        ledger = json.dumps(snapshot_json(snapshot_from_ledger(s, "r1")))
        assert "OPENAI_API_KEY" in ledger and secret not in ledger
        files = list(state.iterdir())
        assert any(f.name.endswith("-wal") for f in files)
        for f in files:
            assert secret.encode() not in f.read_bytes(), f
    for f in state.iterdir():
        assert secret.encode() not in f.read_bytes(), f


def test_workstream_row_from_plan_model(tmp_path: Path) -> None:
    ws = Workstream(
        id="WS-07A",
        name="Scan",
        phase_id="PH-07",
        repo=tmp_path,
        base_branch="main",
        tool="aider",
        timeout_minutes=5,
        depends_on=["PH-06::WS-01"],
        worktree_root=tmp_path / "worktrees",
    )
    row = WorkstreamRow.from_workstream(ws)
    assert row.task_id == "PH-07::WS-07A"
    assert row.branch == "ws/PH-07/WS-07A"
    assert row.worktree_path == str(tmp_path / "worktrees" / "PH-07-WS-07A")
    assert row.depends_on == ("PH-06::WS-01",)


def test_threads_share_one_store(store: RunStore, tmp_path: Path) -> None:
    rid = _make_run(store, tmp_path / "p.yaml")

    tasks = [row.task_id for row in _rows()]

    def writer(task_id: str) -> None:
        for i in range(50):
            store.update_result(rid, task_id, files_changed=i, at=float(i))

    threads = [threading.Thread(target=writer, args=(t,)) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [e for e in store.events(rid) if e.kind == "result"]
    assert len(results) == 50 * len(tasks)
    for task_id in tasks:
        mine = [e.payload["files_changed"] for e in results if e.task_id == task_id]
        assert mine == list(range(50))


# --------------------------------------------------------------------------- ownership


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_live_owner_is_refused_and_dead_owner_taken_over(store: RunStore, tmp_path: Path) -> None:
    rid = _make_run(store, tmp_path / "p.yaml")
    child = _sleeper()
    try:
        pid, ct = process_identity(child.pid)
        store.claim_owner(rid, pid, ct)
        me = process_identity()
        with pytest.raises(SetupError) as err:
            store.claim_owner(rid, *me)
        message = str(err.value)
        assert f"run {rid} is driven by mission-control pid {child.pid}" in message
        assert "stop it or wait for it" in message
        run = store.get_run(rid)
        assert run is not None and store.owner_alive(run)
        assert snapshot_json(snapshot_from_ledger(store, rid))["owner"]["alive"] is True
    finally:
        child.kill()
        child.wait()
    assert not process_alive(pid, ct)
    store.claim_owner(rid, *process_identity())
    run = store.get_run(rid)
    assert run is not None and run.owner_pid == os.getpid()
    claimed = [e for e in store.events(rid) if e.kind == "owner_claimed"]
    assert claimed[-1].payload == {"pid": os.getpid(), "took_over_from": pid}
    # claiming again as the same process is a no-op
    store.claim_owner(rid, *process_identity())
    assert len([e for e in store.events(rid) if e.kind == "owner_claimed"]) == 2
    # release only by the owner
    store.release_owner(rid, pid + 1)
    assert (store.get_run(rid) or run).owner_pid == os.getpid()
    store.release_owner(rid, os.getpid())
    released = store.get_run(rid)
    assert released is not None and released.owner_pid is None
    assert not store.owner_alive(released)


def test_reused_pid_is_a_stale_owner(store: RunStore, tmp_path: Path) -> None:
    rid = _make_run(store, tmp_path / "p.yaml")
    pid, ct = process_identity()
    # Our own pid, but a start time an hour earlier: another process that used this pid.
    store.claim_owner(rid, pid, ct - 3600.0)
    assert not process_alive(pid, ct - 3600.0)
    store.claim_owner(rid, pid, ct)
    run = store.get_run(rid)
    assert run is not None and run.owner_create_time == pytest.approx(ct)


def test_claim_unknown_run(store: RunStore) -> None:
    with pytest.raises(SetupError, match="no run r-missing"):
        store.claim_owner("r-missing", *process_identity())


_CLAIMER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mission_control.errors import SetupError
    from mission_control.store.runs import RunStore, process_identity
    store = RunStore(Path(sys.argv[1]))
    go = Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    try:
        store.claim_owner(sys.argv[2], *process_identity())
        print("won", flush=True)
    except SetupError as err:
        print("lost", err, flush=True)
    sys.stdin.read()  # stay alive (a live owner) until the test closes stdin
    """
)


def test_racing_claims_have_one_winner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with RunStore(state) as s:
        rid = _make_run(s, tmp_path / "p.yaml")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(state), rid, str(go)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        for _ in range(4)
    ]
    try:
        time.sleep(0.5)  # let them import and wait at the gate
        go.touch()
        results = [p.stdout.readline().strip() for p in procs if p.stdout]
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
        for p in procs:
            p.wait(timeout=10)
    assert sum(r == "won" for r in results) == 1, results
    winner = procs[[r == "won" for r in results].index(True)].pid
    losers = [r for r in results if r != "won"]
    assert all(f"driven by mission-control pid {winner}" in r for r in losers), results


# --------------------------------------------------------------------------- crash safety

_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mission_control.engine.states import WsState
    from mission_control.store.runs import RunStore, WorkstreamRow, process_identity
    store = RunStore(Path(sys.argv[1]))
    run_id = sys.argv[2]
    if store.get_run(run_id) is None:
        rows = [WorkstreamRow(f"P::W{i}", "P", f"W{i}", f"w{i}", "shell", f"ws/P/W{i}", f"/wt/{i}")
                for i in range(3)]
        store.create_run(run_id, Path("plan.yaml"), "crash", {}, rows)
    store.claim_owner(run_id, *process_identity())
    flow = [WsState.QUEUED, WsState.PREPARING, WsState.RUNNING, WsState.FINISHING,
            WsState.SUCCEEDED]
    print("ready", flush=True)
    while True:
        for i in range(3):
            task = f"P::W{i}"
            ws = store.workstream(run_id, task)
            n = ws.attempts + 1
            for state in flow[:3]:
                store.record_state(run_id, task, state, f"attempt {n}", time.time())
            store.start_attempt(run_id, task, n, pid=123, pid_create_time=1.0,
                                log_path=f"/l/{n}", worktree="/wt", branch="b",
                                base_commit="base", argv=["x"], env_names=["K"],
                                started_at=time.time())
            store.update_result(run_id, task, head_commit=f"h{n}", files_changed=n)
            store.end_attempt(run_id, task, n, exit_code=0, signal=None,
                              status="succeeded", ended_at=time.time())
            for state in flow[3:]:
                store.record_state(run_id, task, state, "", time.time())
    """
)


def _check_consistent(state: Path, run_id: str, lives: int) -> int:
    """``lives``: how many writers were killed; each may leave one attempt per
    workstream without its end (killed between start and end)."""
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with RunStore(state) as s:
        run = s.get_run(run_id)
        assert run is not None and not run.finished
        events = s.events(run_id)
        assert [e.id for e in events] == sorted(e.id for e in events)
        total = 0
        for ws in s.workstreams(run_id):
            chain = [e for e in events if e.kind == "state" and e.task_id == ws.task_id]
            if chain:
                assert chain[-1].payload["new"] == ws.state.value
                for before, after in itertools.pairwise(chain):
                    assert after.payload["old"] == before.payload["new"]
            else:
                assert ws.state is WsState.PENDING
            attempts = s.attempts(run_id, ws.task_id)
            assert [a.attempt for a in attempts] == list(range(1, ws.attempts + 1))
            started = [e for e in events if e.kind == "attempt_started" and e.task_id == ws.task_id]
            ended = [e for e in events if e.kind == "attempt_ended" and e.task_id == ws.task_id]
            assert len(started) == len(attempts)
            assert len(ended) == sum(a.ended_at is not None for a in attempts)
            assert len(ended) >= len(attempts) - lives
            total += len(attempts)
        return total


def test_sigkill_mid_writes_leaves_a_store_that_opens_and_resumes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_id = "20300101-000000-dead"
    rng = random.Random(7)
    progress = -1
    for life in range(1, 4):
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(state), run_id],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.1, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        total = _check_consistent(state, run_id, life)
        assert total > progress  # each life wrote more, on top of what was there
        progress = total
    # The run resumes: the dead writer's claim is stale, so we take it over.
    with RunStore(state) as s:
        run = s.resumable_run()
        assert run is not None and run.run_id == run_id
        assert run.owner_pid == child.pid and not s.owner_alive(run)
        assert not psutil.pid_exists(child.pid) or not process_alive(
            child.pid, run.owner_create_time or 0.0
        )
        s.claim_owner(run_id, *process_identity())
        s.finish_run(run_id, "succeeded", time.time())
        assert (s.get_run(run_id) or run).finished


def test_opening_the_store_again_keeps_this_process_s_locks(tmp_path: Path) -> None:
    # A driver opens the ledger more than once (its command, then its engine). Another
    # process closing its own connection must not then take the WAL from under it.
    state = tmp_path / "state"
    driver = RunStore(state)
    run_id = _make_run(driver, tmp_path / "plan.yaml")
    RunStore(state).close()  # a second store of the same process, opened and closed
    close = f"from mission_control.store.runs import RunStore; RunStore({str(state)!r}).close()"
    subprocess.run([sys.executable, "-c", close], check=True, timeout=60)
    assert (state / "state.db-wal").exists()
    driver.claim_owner(run_id, os.getpid(), psutil.Process().create_time())
    seen = subprocess.run(
        [sys.executable, "-c", "import sys; from mission_control.store.runs import RunStore;"
         f" print(RunStore({str(state)!r}).get_run({run_id!r}).owner_pid)"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert seen.stdout.strip() == str(os.getpid())
    driver.close()
