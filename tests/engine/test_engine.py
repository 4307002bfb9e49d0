"""The engine end to end: real repositories, real processes, the scripted agent."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import psutil

from mission_control.engine import events as ev
from mission_control.engine.states import WsState
from tests.conftest import GitRepo
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws
from tests.helpers import wait_for_pids


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_diamond_runs_in_order_and_dependents_see_their_dependencies(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    check_all = "test -f a.txt && test -f b.txt && test -f c.txt && echo d > d.txt"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                4,
                [
                    ws("A", "--write", "a.txt=a"),
                    ws("B", "--write", "b.txt=b", deps=["A"]),
                    ws("C", "--write", "c.txt=c", deps=["A"]),
                    {
                        "id": "D",
                        "name": "needs all three",
                        "tool": "shell",
                        "command": [check_all],
                        "shell": True,
                        "depends_on": ["B", "C"],
                    },
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True
    running_order = [
        e.task_id
        for e in rec.events
        if isinstance(e, ev.WorkstreamStateChanged) and e.new is WsState.RUNNING
    ]
    assert running_order[0] == "P1::A"
    assert set(running_order[1:3]) == {"P1::B", "P1::C"}
    assert running_order[3] == "P1::D"
    assert all(rec.states[t] is WsState.SUCCEEDED for t in ("P1::A", "P1::B", "P1::C", "P1::D"))
    # every branch was pushed to origin, with its work on it
    remote = _git(git_repo.origin, "branch", "--list", "ws/*")
    assert {line.strip() for line in remote.splitlines()} == {
        "ws/P1/A",
        "ws/P1/B",
        "ws/P1/C",
        "ws/P1/D",
    }
    files = _git(git_repo.origin, "ls-tree", "--name-only", "ws/P1/D").split()
    assert {"a.txt", "b.txt", "c.txt", "d.txt"} <= set(files)


async def test_peak_parallelism_reaches_the_limit_and_never_exceeds_it(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 3, [ws(f"W{i}", "--sleep", "0.8") for i in range(7)])],
    )
    engine = make_engine(plan, tmp_path / "state")
    running: set[str] = set()
    peak = 0

    def on_event(event: ev.Event) -> None:
        # A slot is held from preparing until the work is committed: after that a
        # finishing workstream only pushes and gives its slot back.
        nonlocal peak
        if isinstance(event, ev.WorkstreamStateChanged):
            if event.new in (WsState.PREPARING, WsState.RUNNING, WsState.FINISHING):
                running.add(event.task_id)
            else:
                running.discard(event.task_id)
            peak = max(peak, len(running))
        elif isinstance(event, ev.FinishStepDone) and event.step == "commit":
            running.discard(event.task_id)

    engine.subscribe(on_event)
    assert await engine.run() is True
    assert peak == 3


async def test_conflicting_dependencies_fail_the_dependent_before_its_tool(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit_file("shared.txt", "original\n")
    git_repo.git("push", "-q", "origin", "main")
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    ws("A", "--write", "shared.txt=from A"),
                    ws("B", "--write", "shared.txt=from B"),
                    ws("C", "--write", "ran.txt=yes", deps=["A", "B"]),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False
    assert rec.states["P1::C"] is WsState.FAILED
    assert "shared.txt" in rec.details("P1::C")[-1]
    assert WsState.RUNNING not in rec.transitions("P1::C")
    worktree = plan.workstream("P1::C").worktree_path
    assert not (worktree / "ran.txt").exists()
    assert _git(worktree, "status", "--porcelain") == ""


async def test_timeout_ends_the_whole_tree_even_when_it_ignores_sigterm(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    ws(
                        "T",
                        "--pid-file",
                        str(pid_file),
                        "--ignore-term",
                        "--children",
                        "2",
                        "--grandchildren",
                        "1",
                        "--daemon",
                        "--forever",
                        timeout_minutes=0.05,
                    )
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    pids = await asyncio.to_thread(
        wait_for_pids, pid_file, {"main": 1, "child": 2, "grandchild": 2, "daemon": 1}
    )
    assert await run is False
    assert rec.states["P1::T"] is WsState.TIMED_OUT
    everyone = [pid for group in pids.values() for pid in group]
    alive = [pid for pid in everyone if psutil.pid_exists(pid) and _not_zombie(pid)]
    info = [(pid, role, _describe(pid)) for role, group in pids.items() for pid in group]
    assert alive == [], (info, [e for e in rec.events if type(e).__name__ == "EngineWarned"])


def _describe(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        return f"ppid {proc.ppid()} {proc.status()}"
    except psutil.Error:
        return "gone"


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_kill_pause_and_resume_through_the_engine(git_repo: GitRepo, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    # 1 s of work against a 6 s timeout, paused for 6.5 s on the way: only
                    # counted paused time could time it out, and a slow machine has 5 s to spare
                    ws("P", "--lines", "20", "--rate", "20", timeout_minutes=6 / 60),
                    ws(
                        "K",
                        "--pid-file",
                        str(pid_file),
                        "--ignore-term",
                        "--children",
                        "1",
                        "--forever",
                    ),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.state("P1::P", WsState.RUNNING)
    await asyncio.sleep(0.5)
    await engine.pause("P1::P")
    assert rec.states["P1::P"] is WsState.PAUSED
    view = engine.snapshot().workstreams["P1::P"]
    assert view.log_path is not None
    log = Path(view.log_path)
    size = log.stat().st_size
    await asyncio.sleep(6.5)
    assert log.stat().st_size == size  # nothing printed while paused
    await engine.resume("P1::P")
    await rec.state("P1::P", WsState.SUCCEEDED, WsState.TIMED_OUT, WsState.FAILED)
    assert rec.states["P1::P"] is WsState.SUCCEEDED  # paused time did not count
    assert log.read_text().count("line ") == 20

    pids = await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1, "child": 1})
    await rec.state("P1::K", WsState.RUNNING)
    await engine.kill("P1::K")
    await rec.state("P1::K", WsState.KILLED)
    for group in pids.values():
        for pid in group:
            assert not _not_zombie(pid)
    await engine.cancel()
    assert await run is False


async def test_retry_makes_a_new_attempt_and_skip_unblocks_dependents(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    ws("A", "--write", "a.txt=a", "--fail-first"),
                    ws("B", "--write", "b.txt=b", deps=["A"]),
                    ws("C", "--exit", "3"),
                    ws("D", "--write", "d.txt=d", deps=["C"]),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.state("P1::B", WsState.BLOCKED)
    await rec.state("P1::D", WsState.BLOCKED)
    assert rec.states["P1::A"] is WsState.FAILED
    assert "exited 1" in rec.details("P1::A")[-1]
    assert "exited 3" in rec.details("P1::C")[-1]

    await engine.retry("P1::A")
    await rec.state("P1::B", WsState.SUCCEEDED)
    assert engine.snapshot().workstreams["P1::A"].attempt == 2
    logs = sorted(p.name for p in (tmp_path / "state").rglob("attempt-*.log") if "A" in p.parts)
    assert logs == ["attempt-1.log", "attempt-2.log"]

    await engine.skip("P1::C")
    await rec.state("P1::D", WsState.SUCCEEDED)
    assert rec.states["P1::C"] is WsState.SKIPPED
    await engine.cancel()
    assert await run is True


async def test_missing_tool_and_missing_prompt_fail_cleanly_with_nothing_made(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("do it\n")
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    import yaml

    doc = {
        "version": 1,
        "defaults": {"repo": str(git_repo.path), "base_branch": "main", "timeout_minutes": 1},
        "tools": {"ghost": {"argv": ["mc-no-such-agent-xyz", "{prompt_file}"]}},
        "phases": [
            {
                "id": "P1",
                "name": "p",
                "max_parallel_workstreams": 2,
                "workstreams": [
                    {"id": "G", "name": "ghost", "tool": "ghost", "prompt_file": str(prompt)},
                    {
                        "id": "M",
                        "name": "lost prompt",
                        "tool": "shell",
                        "command": ["true"],
                        "prompt_file": str(tmp_path / "gone.txt"),
                    },
                ],
            }
        ],
    }
    (tmp_path / "gone.txt").write_text("soon gone\n")
    (plan_dir / "plan.yaml").write_text(yaml.safe_dump(doc))
    from mission_control.plan.loader import load_plan_or_raise

    plan = load_plan_or_raise(plan_dir / "plan.yaml")
    (tmp_path / "gone.txt").unlink()
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False
    assert rec.states["P1::G"] is WsState.FAILED
    assert "tool 'ghost' not found on PATH" in rec.details("P1::G")[-1]
    assert rec.states["P1::M"] is WsState.FAILED
    assert "gone.txt" in rec.details("P1::M")[-1]
    for task_id in ("P1::G", "P1::M"):
        assert not plan.workstream(task_id).worktree_path.exists()
    assert _git(git_repo.path, "branch", "--list", "ws/*") == ""


async def test_user_checkout_is_untouched_and_sixteen_start_at_once(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    repo = git_repo.path
    (repo / "README.md").write_text("edited but not committed\n")
    (repo / "staged.txt").write_text("staged\n")
    git_repo.git("add", "staged.txt")
    (repo / "untracked.txt").write_text("untracked\n")

    def fingerprint() -> tuple[str, bytes, dict[str, bytes], str]:
        files = {
            str(p.relative_to(repo)): p.read_bytes()
            for p in repo.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(repo).parts
        }
        return (
            git_repo.git("rev-parse", "HEAD"),
            (repo / ".git" / "index").read_bytes(),
            files,
            git_repo.git("symbolic-ref", "HEAD"),
        )

    before = fingerprint()
    plan = write_plan(
        tmp_path,
        repo,
        [("P1", 16, [ws(f"W{i:02d}", "--write", f"w{i}.txt={i}") for i in range(16)])],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.states
    assert fingerprint() == before
