"""Set-up of a new worktree: untracked files brought in, ``setup:`` commands, ``teardown:``.

Real repositories and real processes: the commands are small shell lines that
leave traces (a counter file in the plan's folder) so a test can tell which ran,
in which order and how often.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from mission_control.engine.engine import Engine
from mission_control.engine.states import WsState
from mission_control.engine.worktree_setup import run_teardown
from mission_control.errors import SetupError
from mission_control.store.runs import RunStore
from tests.conftest import GitRepo
from tests.engine.engine_helpers import Recorder, make_engine, write_plan


def _shell_ws(ws_id: str, line: str, **extra: object) -> dict[str, object]:
    return {"id": ws_id, "tool": "shell", "command": [line], "shell": True, **extra}


def _log(state: Path, ws_id: str, attempt: int = 1) -> str:
    found = [p for p in state.rglob(f"attempt-{attempt}.log") if ws_id in p.parts]
    assert found, f"no log for {ws_id} attempt {attempt}"
    return found[0].read_text()


async def test_setup_runs_in_order_before_the_tool_under_headers_in_its_log(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    setup = [
        f"sh -c 'echo one >> {trace}'",
        {"name": "second", "run": f"echo two >> {trace}; echo set-up-output", "shell": True},
    ]
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [_shell_ws("A", f"echo tool >> {trace}; echo work > w.txt")])],
        setup=setup,
    )
    engine = make_engine(plan, tmp_path / "state")
    assert await engine.run() is True
    assert trace.read_text().split() == ["one", "two", "tool"]
    log = _log(tmp_path / "state", "A")
    first = f"sh -c 'echo one >> {trace}'"
    assert f"──── set-up '{first}': sh -c 'echo one >> {trace}' (timeout 600s) ────" in log
    assert "──── set-up 'second': " in log
    assert log.index("set-up-output") < log.index("──── commit ok")


async def test_failing_setup_fails_the_workstream_before_its_tool_with_its_last_lines(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    failing = "echo npm ERR! missing script: ci; echo second line; exit 7"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    _shell_ws(
                        "A",
                        f"echo tool >> {trace}",
                        setup=[{"run": failing, "shell": True, "name": "deps"}],
                    )
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False
    assert rec.states["P1::A"] is WsState.FAILED
    detail = rec.details("P1::A")[-1]
    assert detail == "P1::A: set-up 'deps' exited 7: npm ERR! missing script: ci | second line"
    assert not trace.exists()  # the tool never started
    assert "──── set-up FAILED: P1::A: set-up 'deps' exited 7" in _log(tmp_path / "state", "A")


async def test_setup_times_out(git_repo: GitRepo, tmp_path: Path) -> None:
    slow = {"run": "echo waiting; sleep 30", "shell": True, "name": "slow", "timeout_minutes": 0.02}
    plan = write_plan(tmp_path, git_repo.path, [("P1", 1, [_shell_ws("A", "true", setup=[slow])])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False
    detail = rec.details("P1::A")[-1]
    assert detail.startswith("P1::A: set-up 'slow' timed out after 1.2s: waiting"), detail


async def test_setup_runs_again_on_a_fresh_retry_not_on_a_plain_retry(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    count = tmp_path / "count"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [_shell_ws("A", "exit 1")])],
        setup=[f"sh -c 'echo x >> {count}'"],
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.state("P1::A", WsState.FAILED)
    assert count.read_text().split() == ["x"]

    await _retry(engine, fresh=False)
    await rec.until(lambda: rec.transitions("P1::A").count(WsState.FAILED) == 2)
    assert count.read_text().split() == ["x"]  # same worktree: set up already
    assert "set-up: done before in this worktree" in _log(tmp_path / "state", "A", 2)

    await _retry(engine, fresh=True)
    await rec.until(lambda: rec.transitions("P1::A").count(WsState.FAILED) == 3)
    assert count.read_text().split() == ["x", "x"]  # reset to its base: set up again
    await engine.cancel()
    await run


async def _retry(engine: Engine, *, fresh: bool) -> None:
    """Retry P1::A once its failed attempt has let go of it (its task ends after the state)."""
    for _ in range(1500):
        try:
            await engine.retry("P1::A", fresh=fresh)
            return
        except SetupError:
            await asyncio.sleep(0.02)
    raise AssertionError("P1::A was never free to retry")


async def test_port_placeholder_and_env_reach_setup_tool_and_checks(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    _shell_ws(
                        "A",
                        f"echo tool $MC_PORT $MC_PORT_0 $MC_PORT_1 >> {seen}",
                        ports=2,
                        setup=[f"sh -c 'echo setup {{port}} $MC_PORT >> {seen}'"],
                        checks=[
                            {"run": f"echo check {{port}} $MC_PORT_1 >> {seen}", "shell": True}
                        ],
                    )
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    assert await engine.run() is True
    lines = [line.split() for line in seen.read_text().splitlines()]
    port, second = lines[2][1], lines[2][2]
    assert lines == [["setup", port, port], ["tool", port, port, second], ["check", port, second]]
    assert 20000 <= int(port) <= 29999 and port != second
    attempts = RunStore(tmp_path / "state").attempts(engine.run_id, "P1::A")
    assert attempts[-1].ports == (int(port), int(second))


async def test_copy_and_link_bring_untracked_files_and_never_leave_the_repository(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    repo = git_repo.path
    (repo / ".gitignore").write_text(".env*\nnode_modules\nsecret-link\nweird\n")
    git_repo.git("add", ".gitignore")
    git_repo.git("commit", "-qm", "ignore")
    git_repo.git("push", "-q", "origin", "main")
    (repo / ".env").write_text("KEY=1\n")
    (repo / ".env.local").write_text("LOCAL=1\n")
    (repo / "node_modules" / "pkg").mkdir(parents=True)
    (repo / "node_modules" / "pkg" / "index.js").write_text("x\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the repository's\n")
    (repo / "secret-link").symlink_to(outside)
    (repo / "weird").mkdir()
    os.mkfifo(repo / "weird" / "pipe")
    (repo / "weird" / "ok.txt").write_text("ok\n")
    (repo / "weird" / "out").symlink_to(outside)
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [_shell_ws("A", "cat .env > seen.txt; test -f node_modules/pkg/index.js")])],
        copy=[".env", ".env.*", "secret-link", "weird", "outside.txt"],
        link=["node_modules"],
    )
    # A pattern that tries to leave the repository is refused by the plan itself.
    bad = tmp_path / "bad"
    bad.mkdir()
    from mission_control.plan.loader import load_plan

    (bad / "plan.yaml").write_text(
        (tmp_path / "plan.yaml").read_text().replace("- outside.txt", "- ../outside.txt")
    )
    problems = [str(p) for p in load_plan(bad / "plan.yaml").problems]
    assert len(problems) == 1 and "pattern '../outside.txt' leaves the repository" in problems[0]

    engine = make_engine(plan, tmp_path / "state")
    assert await engine.run() is True
    worktree = plan.workstreams[0].worktree_path
    assert (worktree / ".env").read_text() == "KEY=1\n"
    assert (worktree / ".env.local").read_text() == "LOCAL=1\n"
    assert (worktree / "node_modules").is_symlink()
    assert os.path.realpath(worktree / "node_modules") == str((repo / "node_modules").resolve())
    assert not (worktree / "secret-link").exists() and not (worktree / "secret-link").is_symlink()
    assert (worktree / "weird" / "ok.txt").read_text() == "ok\n"
    assert not (worktree / "weird" / "pipe").exists()
    assert not (worktree / "weird" / "out").is_symlink()
    assert not (worktree / "outside.txt").exists()
    log = _log(tmp_path / "state", "A")
    assert "──── files: copied .env, .env.local, weird; linked node_modules" in log
    assert "──── files: skipped secret-link: a symlink that leads out of the repository" in log
    assert "──── files: skipped weird/out: a symlink that leads out of the repository" in log
    assert "──── files: skipped weird/pipe: a FIFO" in log
    # The work is committed, what was brought is not.
    files = git_repo.git("ls-tree", "-r", "--name-only", "ws/P1/A").split()
    assert "seen.txt" in files
    assert not {"node_modules", ".env", "weird/ok.txt"} & set(files)


async def test_worktreeinclude_copies_ignored_files_it_names(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    repo = git_repo.path
    (repo / ".gitignore").write_text(".env\nconfig/local.yaml\n")
    (repo / ".worktreeinclude").write_text("# files a worktree needs\n.env\nconfig/\nnotes.txt\n")
    git_repo.git("add", ".gitignore", ".worktreeinclude")
    git_repo.git("commit", "-qm", "include")
    git_repo.git("push", "-q", "origin", "main")
    (repo / ".env").write_text("A=1\n")
    (repo / "config").mkdir()
    (repo / "config" / "local.yaml").write_text("db: x\n")
    (repo / "notes.txt").write_text("untracked but not ignored\n")
    plan = write_plan(tmp_path, repo, [("P1", 1, [_shell_ws("A", "true")])])
    engine = make_engine(plan, tmp_path / "state")
    assert await engine.run() is True
    worktree = plan.workstreams[0].worktree_path
    assert (worktree / ".env").read_text() == "A=1\n"
    assert (worktree / "config" / "local.yaml").read_text() == "db: x\n"
    assert not (worktree / "notes.txt").exists()  # only what git ignores, as in Claude Code


def test_teardown_runs_in_the_worktree_with_its_ports_and_reports_failures(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    _shell_ws(
                        "A",
                        "true",
                        teardown=[
                            {
                                "run": f"echo down {{port}} $MC_PORT $(pwd) >> {trace}",
                                "shell": True,
                            },
                            {"name": "broken", "run": "echo it broke; exit 4", "shell": True},
                        ],
                    )
                ],
            )
        ],
    )
    ws = plan.workstreams[0]
    worktree = tmp_path / "some-worktree"
    worktree.mkdir()
    failures = run_teardown(ws, worktree, (23456,))
    assert trace.read_text().split() == ["down", "23456", "23456", str(worktree)]
    assert failures == ["teardown 'broken' exited with 4: it broke"]


def test_clean_runs_teardown_before_removing_the_worktree(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [_shell_ws("A", "echo hi > a.txt")])],
        teardown=[{"run": f"echo down $MC_PORT $(pwd) >> {trace}", "shell": True}],
    )
    env = {**os.environ}
    state = tmp_path / ".mission-control"
    plan_path = str(tmp_path / "plan.yaml")
    cli = [sys.executable, "-m", "mission_control"]
    done = subprocess.run(
        [*cli, "run", plan_path, "--headless"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    worktree = plan.workstreams[0].worktree_path
    assert worktree.exists()
    cleaned = subprocess.run(
        [*cli, "clean", "--plan", plan_path], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not worktree.exists()
    words = trace.read_text().split()
    assert words[0] == "down" and words[2] == str(worktree)
    assert 20000 <= int(words[1]) <= 29999  # the port its last attempt had
    assert "P1::A: teardown ok" in cleaned.stdout
    assert state.exists()
