"""The ray backend end to end: a real local Ray cluster, real git with a bare origin,
the scripted agent as the tool, and the real engine.

The nodes clone from ``origin`` (never the user's folder); what they do must come
back as branches on the remote, local branches with the same commits, and complete
local logs; pause, kill and timeouts act on the node's process tree; a killed actor
ends its attempt as interrupted and the engine starts it again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from mission_control.agents.report import summarize_stream
from mission_control.engine import events as ev
from mission_control.engine.engine import Engine
from mission_control.engine.process_tree import processes_with_env
from mission_control.engine.states import WsState
from mission_control.errors import SetupError
from mission_control.plan.loader import load_plan_or_raise
from mission_control.store.runs import RunStore
from tests.conftest import GitRepo
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws
from tests.helpers import agent_argv, wait_for, wait_for_pids

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _shell_line(ws_id: str, line: str) -> dict[str, object]:
    """A workstream whose tool is one shell line."""
    return {"id": ws_id, "name": ws_id, "tool": "shell", "command": [line], "shell": True}


def _leftovers(run_id: str) -> list[int]:
    return [p.pid for p in processes_with_env({"MC_RUN_ID": run_id})]


async def test_a_diamond_runs_through_ray_with_branches_on_the_remote_and_full_logs(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    user_head = git_repo.git("rev-parse", "HEAD")
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P",
                2,
                [
                    ws("a", "--write", "a.txt=from a", "--lines", "300", "--color"),
                    ws("b", "--write", "b.txt=from b", deps=["P::a"]),
                    ws("c", "--write", "c.txt=from c", "--lines", "50", deps=["P::a"]),
                    ws("e", "--lines", "3"),  # changes nothing
                    ws(
                        "d",
                        "--write",
                        "d.txt=from d",
                        deps=["P::b", "P::c", "P::e"],
                        checks=[
                            {
                                "name": "deps merged",
                                "run": "test -f a.txt && test -f b.txt && test -f c.txt",
                                "shell": True,
                            }
                        ],
                    ),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.states

    origin = git_repo.origin
    for name in "abcd":
        branch = f"ws/P/{name}"
        remote_head = _git(origin, "rev-parse", branch)
        assert _git(git_repo.path, "rev-parse", branch) == remote_head  # came back locally
        assert _git(origin, "show", f"{branch}:{name}.txt") == f"from {name}"
    # e changed nothing: its branch is the base, here and on the remote, for dependents.
    main = _git(origin, "rev-parse", "main")
    assert _git(origin, "rev-parse", "ws/P/e") == main
    assert _git(git_repo.path, "rev-parse", "ws/P/e") == main
    assert "succeeded (no changes)" in rec.details("P::e")[-1]
    # d holds everything it depends on, merged on its node from the remote's branches.
    tree = _git(origin, "ls-tree", "--name-only", "ws/P/d").split()
    assert {"a.txt", "b.txt", "c.txt", "d.txt", "README.md"} <= set(tree)
    subjects = _git(origin, "log", "--format=%s", "ws/P/d")
    for name in "abcd":
        assert f"[P::{name}] workstream {name}" in subjects

    # The diff comes from the branch that came back (no worktree here).
    diff = await asyncio.to_thread(engine.diff, "P::a")
    assert "a.txt" in diff and "from a" in diff
    snapshot = engine.snapshot()
    log_a = Path(snapshot.workstreams["P::a"].log_path or "")
    text = log_a.read_text()
    assert text.count(" of 300") == 300  # every line of the tool, in order
    assert text.index("line 1 of 300") < text.index("line 300 of 300")
    assert "──── commit ok" in text and "──── push ok: origin/ws/P/a" in text
    log_d = Path(snapshot.workstreams["P::d"].log_path or "").read_text()
    assert "──── check ok: check 'deps merged' passed" in log_d
    steps = [e for e in rec.events if isinstance(e, ev.FinishStepDone) and e.task_id == "P::d"]
    assert [s.step for s in steps] == ["check", "commit", "push", "pr"]

    # The user's checkout is untouched and no node process is left.
    assert git_repo.git("rev-parse", "HEAD") == user_head
    assert git_repo.git("status", "--porcelain") == ""
    assert _leftovers(engine.run_id) == []


async def test_pause_kill_and_timeout_through_ray_leave_no_process(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    pids_k = tmp_path / "k.jsonl"
    pids_t = tmp_path / "t.jsonl"
    tree = ["--ignore-term", "--children", "2", "--grandchildren", "1", "--daemon"]
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P",
                2,
                [
                    ws("k", "--pid-file", str(pids_k), *tree, "--lines", "-1", "--rate", "20"),
                    ws("t", "--pid-file", str(pids_t), *tree, "--forever", timeout_minutes=0.1),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state", backend="ray", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    want = {"main": 1, "child": 2, "grandchild": 2, "daemon": 1}
    k = await asyncio.to_thread(wait_for_pids, pids_k, want)
    await rec.state("P::k", WsState.RUNNING)

    await engine.pause("P::k")
    assert rec.states["P::k"] is WsState.PAUSED
    everyone = [pid for group in k.values() for pid in group]
    states = {psutil.Process(pid).status() for pid in everyone}
    assert states == {psutil.STATUS_STOPPED}
    log = Path(engine.snapshot().workstreams["P::k"].log_path or "")
    await asyncio.sleep(1.0)  # let the last bytes written before the stop arrive
    size = log.stat().st_size
    await asyncio.sleep(1.5)
    assert log.stat().st_size == size
    await engine.resume("P::k")
    await rec.until(lambda: log.stat().st_size > size, timeout=10)

    await engine.kill("P::k")
    await rec.state("P::k", WsState.KILLED)
    assert [pid for pid in everyone if _alive(pid)] == []

    t = await asyncio.to_thread(wait_for_pids, pids_t, want)
    await rec.state("P::t", WsState.TIMED_OUT, timeout=30)
    assert [pid for group in t.values() for pid in group if _alive(pid)] == []
    await engine.cancel()
    assert await run is False
    assert _leftovers(engine.run_id) == []


async def test_a_killed_actor_is_interrupted_then_started_again(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.jsonl"
    first = agent_argv("--pid-file", str(pid_file), "--children", "1", "--daemon", "--forever")
    second = agent_argv("--write", "x.txt=second")
    line = (
        f'if [ "$MC_ATTEMPT" = 1 ]; then exec {" ".join(first)}; else exec {" ".join(second)}; fi'
    )
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P", 1, [_shell_line("x", line)])],
    )
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    pids = await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1, "child": 1, "daemon": 1})
    await rec.state("P::x", WsState.RUNNING)
    wrapper = psutil.Process(pids["main"][0]).ppid()  # the attempt's /bin/sh
    actor = psutil.Process(wrapper).ppid()  # the Ray worker that holds the actor
    os.kill(actor, signal.SIGKILL)

    assert await run is True, rec.details("P::x")
    details = rec.details("P::x")
    assert any("lost its Ray actor" in d and "starting it again (1/3)" in d for d in details)
    ended = [e for e in rec.events if isinstance(e, ev.AttemptEnded) and e.task_id == "P::x"]
    assert [e.attempt for e in ended] == [1, 2]
    store = RunStore(tmp_path / "state")
    try:
        assert [(a.attempt, a.status) for a in store.attempts(engine.run_id)] == [
            (1, "interrupted"),
            (2, "exited"),
        ]
    finally:
        store.close()
    assert _git(git_repo.origin, "show", "ws/P/x:x.txt") == "second"
    # The node's watchdog swept the first attempt's tree, daemon included.
    everyone = [pid for group in pids.values() for pid in group]
    assert await asyncio.to_thread(
        lambda: all(not _alive(p) for p in everyone) or _settle(everyone)
    )


def _settle(pids: list[int]) -> bool:
    return wait_for(lambda: all(not _alive(p) for p in pids), timeout=15)


async def test_setup_problems_are_reported_before_anything_runs(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.git("remote", "remove", "origin")
    plan = write_plan(tmp_path, git_repo.path, [("P", 1, [ws("a", "--write", "a.txt=a")])])
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    with pytest.raises(SetupError, match=r"P::a: .* has no remote 'origin'.*remote add origin"):
        await engine.run()
    store = RunStore(tmp_path / "state")
    try:
        assert store.list_runs(5) == []  # refused before the run was recorded
    finally:
        store.close()

    git_repo.git("remote", "add", "origin", str(git_repo.origin))
    big = tmp_path / "big"
    big.mkdir()
    plan = write_plan(
        big, git_repo.path, [("P", 1, [ws("a", "--write", "a.txt=a", resources={"cpus": 64})])]
    )
    engine = make_engine(plan, big / "state", backend="ray")
    with pytest.raises(SetupError, match=r"P::a needs CPU 64, which no node of the Ray cluster"):
        await engine.run()

    # The branch is checked out here (an earlier local run): the work could not come back.
    git_repo.git("worktree", "add", "-q", "-b", "ws/P/a", str(tmp_path / "local-wt"))
    engine = make_engine(plan, big / "state2", backend="ray")
    with pytest.raises(SetupError, match=r"P::a: ws/P/a is checked out in .*local-wt"):
        await engine.run()


def test_the_cli_runs_a_plan_on_a_cluster_by_address(git_repo: GitRepo, tmp_path: Path) -> None:
    import ray

    address = ray.get_runtime_context().gcs_address
    plan = write_plan(
        tmp_path, git_repo.path, [("P", 1, [ws("a", "--write", "a.txt=cli", "--lines", "5")])]
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mission_control",
            "run",
            str(plan.path),
            "--headless",
            "--backend",
            "ray",
            "--ray-address",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "P::a" in out.stdout and "succeeded" in out.stdout
    assert _git(git_repo.origin, "show", "ws/P/a:a.txt") == "cli"
    # The run's log and ledger are read as for a local run.
    state = ["--state-dir", str(tmp_path / ".mission-control")]
    logs = subprocess.run(
        [sys.executable, "-m", "mission_control", "logs", "P::a", *state],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "line 5 of 5" in logs.stdout and "──── push ok: origin/ws/P/a" in logs.stdout
    status = subprocess.run(
        [sys.executable, "-m", "mission_control", "status", "--json", *state],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert '"succeeded"' in status.stdout and "ws/P/a" in status.stdout
    clean = subprocess.run(
        [sys.executable, "-m", "mission_control", "clean", *state],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "removed there" not in clean.stdout  # it was never this command's doing
    assert "P::a: its worktree was on a cluster node (" in clean.stdout
    assert "nothing to remove here" in clean.stdout
    # The node pushed the branch, and this repository knows: it is safe to delete.
    pushed = _git(git_repo.origin, "rev-parse", "ws/P/a")
    assert git_repo.git("rev-parse", "origin/ws/P/a") == pushed
    clean = subprocess.run(
        [sys.executable, "-m", "mission_control", "clean", "--branches", *state],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "P::a: deleted branch ws/P/a" in clean.stdout


def test_without_ray_the_backend_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from mission_control.engine.backend import make_backend\n"
        "from mission_control.errors import SetupError\n"
        "try:\n    make_backend('ray')\n"
        "except SetupError as err:\n    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'mission-control[ray]'" in out.stdout


def _mission_control(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mission_control", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _cluster_address() -> str:
    import ray

    return str(ray.get_runtime_context().gcs_address)


def test_agents_outlive_a_crash_of_mission_control_and_resume_takes_them_back(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P",
                1,
                [
                    ws(
                        "a",
                        "--pid-file",
                        str(pid_file),
                        "--lines",
                        "60",
                        "--rate",
                        "10",
                        "--write",
                        "a.txt=survived",
                    )
                ],
            )
        ],
    )
    state = tmp_path / "state"
    first = _mission_control(
        "run", str(plan.path), "--headless", "--state-dir", str(state),
        "--backend", "ray", "--ray-address", _cluster_address(),
    )  # fmt: skip
    pids = wait_for_pids(pid_file, {"main": 1}, timeout=60)
    assert wait_for(lambda: len(list(state.rglob("attempt-1.log"))) == 1, timeout=10)
    first.kill()  # mission-control dies; its agent must not
    first.communicate(timeout=30)
    agent = pids["main"][0]
    assert _alive(agent)

    second = _mission_control("resume", "--headless", "--state-dir", str(state))
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert "adopted pid" in out
    log = next(state.rglob("attempt-1.log")).read_text()
    for i in range(1, 61):  # every line exactly once, across the two mission-controls
        assert log.count(f"line {i} of 60\n") == 1, (i, log)
    assert not list(state.rglob("attempt-2.log"))
    assert _git(git_repo.origin, "show", "ws/P/a:a.txt") == "survived"
    assert not _alive(agent)


def test_an_abandoned_attempt_stops_itself_and_leaves_nothing_running(
    git_repo: GitRepo, tmp_path: Path, ray_cluster: Path
) -> None:

    pid_file = tmp_path / "pids.jsonl"
    tree = ["--children", "1", "--daemon", "--ignore-term", "--forever"]
    plan = write_plan(
        tmp_path, git_repo.path, [("P", 1, [ws("a", "--pid-file", str(pid_file), *tree)])]
    )
    # A short grace: the tree ignores SIGTERM, so the node waits it out before SIGKILL.
    plan.path.write_text("grace_seconds: 1\n" + plan.path.read_text())
    state = tmp_path / "state"
    driver = _mission_control(
        "run", str(plan.path), "--headless", "--state-dir", str(state),
        "--backend", "ray", "--ray-address", _cluster_address(),
        env={"MC_RAY_ORPHAN_MINUTES": "0.1"},
    )  # fmt: skip
    pids = wait_for_pids(pid_file, {"main": 1, "child": 1, "daemon": 1}, timeout=60)
    time.sleep(8)  # the heartbeat (each second) keeps it alive past its 6 s deadline
    everyone = [pid for group in pids.values() for pid in group]
    assert all(_alive(pid) for pid in everyone)
    driver.kill()
    driver.communicate(timeout=30)
    assert wait_for(lambda: not any(_alive(pid) for pid in everyone), timeout=30)
    runs = list((state / "runs").iterdir())
    name = f"mc/{runs[0].name}/P::a/1"
    assert wait_for(lambda: _actor_gone(name), timeout=30)
    # The node's own copy of the log says why it stopped and where the work stays.
    node_log = ray_cluster / "runs" / runs[0].name / "P" / "a" / "attempt-1.log"
    note = node_log.read_text()
    assert "no mission-control for 0.1 min: attempt stopped; its work stays in" in note


def _actor_gone(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace="mission-control")
    except ValueError:
        return True
    return False


async def _two_for_one_room(
    git_repo: GitRepo, tmp_path: Path
) -> tuple[Engine, Recorder, asyncio.Task[bool], str, str]:
    """Two endless attempts that each need the whole 2-CPU cluster: (…, running, waiting)."""
    whole = {"cpus": 2}
    endless = ("--lines", "-1", "--rate", "10")
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P", 2, [ws("a", *endless, resources=whole), ws("b", *endless, resources=whole)])],
    )
    engine = make_engine(plan, tmp_path / "state", backend="ray", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.until(lambda: WsState.RUNNING in rec.states.values())
    running = next(t for t, s in rec.states.items() if s is WsState.RUNNING)
    return engine, rec, run, running, "P::b" if running == "P::a" else "P::a"


async def test_resources_hold_an_attempt_back_and_a_kill_does_not_wait_for_room(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    engine, rec, run, running, waiting = await _two_for_one_room(git_repo, tmp_path)
    await asyncio.sleep(2.0)
    assert rec.states[waiting] is WsState.PREPARING  # no node has 2 free CPUs
    await engine.kill(waiting)
    await rec.state(waiting, WsState.KILLED, timeout=10)
    assert WsState.RUNNING not in rec.transitions(waiting)
    await engine.kill(running)
    await rec.state(running, WsState.KILLED)
    await engine.cancel()
    assert await run is False
    assert _leftovers(engine.run_id) == []


async def test_an_attempt_that_keeps_losing_its_actor_fails_after_three_restarts(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    # The tool kills the Ray worker that holds its actor (its wrapper shell's parent).
    line = 'kill -9 "$(ps -o ppid= -p "$PPID" | tr -d " ")"; sleep 30'
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P", 1, [_shell_line("x", line)])],
    )
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    rec = Recorder(engine)
    assert await engine.run() is False
    assert rec.states["P::x"] is WsState.FAILED
    details = rec.details("P::x")
    assert [d for d in details if "starting it again" in d][-1].endswith("(3/3)")
    assert details[-1].endswith("(4 times in a row): retry it by hand")
    ended = [e for e in rec.events if isinstance(e, ev.AttemptEnded) and e.task_id == "P::x"]
    assert [e.attempt for e in ended] == [1, 2, 3, 4]
    # The last lost attempt's tool is stopped on its node, not by the time the run ends on
    # a busy machine; well before its own 30 s are up.
    assert wait_for(lambda: _leftovers(engine.run_id) == [], timeout=20), _leftovers(engine.run_id)


async def test_detaching_gives_up_a_wait_for_room_and_leaves_the_running_agent(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    import ray

    engine, rec, run, running, waiting = await _two_for_one_room(git_repo, tmp_path)
    await rec.state(waiting, WsState.PREPARING)
    await engine.detach()
    await asyncio.wait_for(run, 20)  # the wait for room does not hold the detach up
    kept = f"mc/{engine.run_id}/{running}/1"
    assert not _actor_gone(kept)  # the running agent goes on for a later resume
    assert _actor_gone(f"mc/{engine.run_id}/{waiting}/1")
    ray.kill(ray.get_actor(kept, namespace="mission-control"))
    assert await asyncio.to_thread(wait_for, lambda: _leftovers(engine.run_id) == [], 30)


async def test_a_killed_attempts_uncommitted_work_comes_back_for_its_retry(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    line = (
        'if [ -f wip.txt ]; then echo "found $(cat wip.txt)"; echo done > done.txt; exit 0; fi;'
        " echo first > wip.txt; echo wrote; sleep 60"
    )
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P", 1, [_shell_line("x", line)])],
    )
    engine = make_engine(plan, tmp_path / "state", backend="ray", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.state("P::x", WsState.RUNNING)
    log = Path(engine.snapshot().workstreams["P::x"].log_path or "")
    await rec.until(lambda: log.exists() and "wrote" in log.read_text(), timeout=20)
    await engine.kill("P::x")
    await rec.state("P::x", WsState.KILLED)
    kept = "refs/mission-control/wip/ws/P/x"
    assert await asyncio.to_thread(
        wait_for, lambda: subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", kept], cwd=git_repo.path, check=False
        ).returncode == 0, 10
    )  # fmt: skip
    for _ in range(100):  # the attempt is let go of (its work kept) just after "killed"
        try:
            await engine.retry("P::x")
            break
        except SetupError:
            await asyncio.sleep(0.1)
    await rec.state("P::x", WsState.SUCCEEDED, WsState.FAILED, timeout=60)
    assert rec.states["P::x"] is WsState.SUCCEEDED, rec.details("P::x")
    assert _git(git_repo.origin, "show", "ws/P/x:wip.txt") == "first"
    assert _git(git_repo.origin, "show", "ws/P/x:done.txt") == "done"
    second = Path(engine.snapshot().workstreams["P::x"].log_path or "").read_text()
    assert "found first" in second
    assert "uncommitted work is back in the worktree" in second
    gone = subprocess.run(["git", "rev-parse", "--verify", "--quiet", kept], cwd=git_repo.path)
    assert gone.returncode != 0  # taken back: no longer kept here
    await engine.cancel()
    await run


def _live_actors(run_id: str) -> list[str]:
    """Names of the run's actors that are not dead (``ray.util.state`` needs the dashboard,
    which the test cluster does not start; the named-actor list is Ray's core API)."""
    import ray

    return [n for n in ray.util.list_named_actors() if n.startswith(f"mc/{run_id}/")]


def _node_work(node_dir: Path, run_id: str) -> list[Path]:
    """The run's worktree folders on the node."""
    return list((node_dir / "work").glob(f"{run_id}-*"))


def _only_run(state: Path) -> str:
    store = RunStore(state)
    try:
        (run,) = store.list_runs(5)
        return run.run_id
    finally:
        store.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.timeout(600)  # two mission-controls and a wait for the node
def test_work_that_ended_with_no_mission_control_is_finished_or_kept_on_resume(
    git_repo: GitRepo, tmp_path: Path, ray_cluster: Path
) -> None:
    gone = tmp_path / "driver-gone"
    ran = tmp_path / "ran"  # each start of a tool adds a line to ran/<workstream>
    ran.mkdir()
    # Finishes by itself, but only once its mission-control is dead.
    done = (
        f"echo finished > done.txt; echo $MC_ATTEMPT >> {ran}/done;"
        f" while [ ! -f {gone} ]; do sleep 0.2; done; echo exiting unwatched"
    )
    # Leaves uncommitted work and runs until its node stops it; the next attempt ends.
    stopped = (
        'if [ -f wip.txt ]; then echo "found $(cat wip.txt)"; echo second > more.txt;'
        f" echo $MC_ATTEMPT >> {ran}/stopped; exit 0; fi;"
        f" echo first > wip.txt; echo $MC_ATTEMPT >> {ran}/stopped; sleep 600"
    )
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P", 2, [_shell_line("done", done), _shell_line("stopped", stopped)])],
    )
    plan.path.write_text("grace_seconds: 1\n" + plan.path.read_text())
    state = tmp_path / "state"
    driver = _mission_control(
        "run", str(plan.path), "--headless", "--state-dir", str(state),
        "--backend", "ray", "--ray-address", _cluster_address(),
        env={"MC_RAY_ORPHAN_MINUTES": "0.2"},
    )  # fmt: skip
    assert wait_for(lambda: (ran / "done").exists() and (ran / "stopped").exists(), 90)
    driver.kill()
    driver.communicate(timeout=30)
    gone.touch()  # "done" exits 0 with nobody watching; "stopped" runs on
    run_id = _only_run(state)
    # Each actor hears from nobody for 12 s, stops what still runs and goes away.
    assert wait_for(lambda: _live_actors(run_id) == [], timeout=120), _live_actors(run_id)

    resume = _mission_control("resume", "--headless", "--state-dir", str(state))
    out, _ = resume.communicate(timeout=300)
    assert resume.returncode == 0, out

    # The finished tool is not run again; its work is committed once and pushed.
    assert _lines(ran / "done") == ["1"]
    origin = git_repo.origin
    assert _git(origin, "show", "ws/P/done:done.txt") == "finished"
    assert _git(origin, "rev-list", "--count", "main..ws/P/done") == "1"
    # The stopped one's uncommitted work came back for its next attempt.
    assert _lines(ran / "stopped") == ["1", "2"]
    assert _git(origin, "show", "ws/P/stopped:wip.txt") == "first"
    assert _git(origin, "show", "ws/P/stopped:more.txt") == "second"
    # The remote's branches, as this repository knows them, are the pushed ones.
    for name in ("done", "stopped"):
        branch = f"ws/P/{name}"
        assert git_repo.git("rev-parse", f"origin/{branch}") == _git(origin, "rev-parse", branch)

    store = RunStore(state)
    try:
        rows = [(a.task_id, a.attempt, a.status) for a in store.attempts(run_id)]
        assert rows == [
            ("P::done", 1, "exited"),
            ("P::stopped", 1, "interrupted"),
            ("P::stopped", 2, "exited"),
        ]
        assert all(a.ended_at is not None for a in store.attempts(run_id))
    finally:
        store.close()
    # The local logs hold what the nodes wrote while nobody watched.
    logs = state / "runs" / run_id / "P"
    done_log = (logs / "done" / "attempt-1.log").read_text()
    assert "exiting unwatched" in done_log and "its tool had ended" in done_log
    assert "──── commit ok" in done_log
    stopped_log = (logs / "stopped" / "attempt-1.log").read_text()
    assert "no mission-control for 0.2 min: attempt stopped; its work stays in" in stopped_log
    assert "found first" in (logs / "stopped" / "attempt-2.log").read_text()
    # Nothing of the run is left on the cluster: no actor, no process, no node folder.
    assert wait_for(lambda: _live_actors(run_id) == [], timeout=30), _live_actors(run_id)
    assert _leftovers(run_id) == []
    assert not (ray_cluster / "runs" / run_id).exists()
    assert _node_work(ray_cluster, run_id) == []


@pytest.mark.timeout(600)  # two mission-controls and a wait for the node
def test_resume_lets_go_of_the_actor_of_a_workstream_that_had_succeeded(
    git_repo: GitRepo, tmp_path: Path, ray_cluster: Path
) -> None:
    gone = tmp_path / "driver-gone"
    started = tmp_path / "started"
    line = f"echo x > x.txt; touch {started}; while [ ! -f {gone} ]; do sleep 0.2; done"
    plan = write_plan(tmp_path, git_repo.path, [("P", 1, [_shell_line("x", line)])])
    state = tmp_path / "state"
    driver = _mission_control(
        "run", str(plan.path), "--headless", "--state-dir", str(state),
        "--backend", "ray", "--ray-address", _cluster_address(),
    )  # fmt: skip
    assert wait_for(started.exists, timeout=90)
    run_id = _only_run(state)
    assert _live_actors(run_id) != []
    driver.kill()
    driver.communicate(timeout=30)
    gone.touch()
    # The ledger as a crash leaves it between recording success and letting go of the actor.
    store = RunStore(state)
    try:
        now = time.time()
        store.end_attempt(
            run_id, "P::x", 1, exit_code=0, signal=None, status="exited", ended_at=now
        )
        store.record_state(run_id, "P::x", WsState.SUCCEEDED, "pushed to origin", now)
    finally:
        store.close()

    resume = _mission_control("resume", "--headless", "--state-dir", str(state))
    out, _ = resume.communicate(timeout=180)
    assert resume.returncode == 0, out
    assert wait_for(lambda: _live_actors(run_id) == [], timeout=30), _live_actors(run_id)
    assert _leftovers(run_id) == []
    assert _node_work(ray_cluster, run_id) == []


def test_a_closed_node_attempt_leaves_nothing_on_its_node_and_ends_even_if_not_killed(
    git_repo: GitRepo, tmp_path: Path, ray_cluster: Path
) -> None:
    import ray

    from mission_control.remote.node import NodeAttempt
    from mission_control.remote.protocol import NodeSpec

    plan = write_plan(tmp_path, git_repo.path, [("P", 1, [ws("a", "--lines", "1")])])
    spec = NodeSpec(
        run_id="closed-run",
        attempt=1,
        ws=plan.workstream("P::a"),
        tool=plan.tools["shell"],
        remote_url=str(git_repo.origin),
        dependencies=(),
        prompt_text=None,
        grace_seconds=1.0,
        orphan_seconds=3600.0,
    )
    actor = (
        ray.remote(max_restarts=0)(NodeAttempt)
        .options(name="mc/closed-run/P::a/1", lifetime="detached")
        .remote(spec)
    )
    ray.get(actor.prepare.remote(), timeout=120)
    assert _node_work(ray_cluster, "closed-run") != []
    ray.get(actor.close.remote(), timeout=60)
    # No empty folder, no log of the attempt stays behind on the node.
    assert _node_work(ray_cluster, "closed-run") == []
    assert not (ray_cluster / "runs" / "closed-run").exists()
    # Its mission-control "dies" here, before ray.kill: the actor must not wait an hour.
    assert wait_for(lambda: _live_actors("closed-run") == [], timeout=60)


RECORDED_CLAUDE = (
    Path(__file__).resolve().parents[1] / "fixtures/agents/recorded/claude-write.jsonl"
)


async def test_an_agent_on_a_node_reports_its_tokens_and_its_question(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """The node runs the relay too: the engine gets the agent's reports with the node's
    samples and its last one with the end, so a question ends the workstream needs input."""
    stream = RECORDED_CLAUDE.read_text().replace('"done"', '"Which port should it use?"')
    recorded = tmp_path / "asks.jsonl"
    recorded.write_text(stream)
    cli = tmp_path / "recorded-claude"
    cli.write_text(f"#!/bin/sh\ncat '{recorded}'\necho hi > HELLO.md\n")
    cli.chmod(0o755)
    doc = {
        "version": 1,
        "name": "agent on a node",
        "tools": {
            "recorded": {"argv": [str(cli)], "prompt_via": "stdin", "events": "claude-stream-json"}
        },
        "defaults": {
            "repo": str(git_repo.path),
            "base_branch": "main",
            "timeout_minutes": 2,
            "tool": "recorded",
        },
        "phases": [
            {"id": "P", "max_parallel_workstreams": 1, "workstreams": [{"id": "a", "prompt": "go"}]}
        ],
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(doc))
    plan = load_plan_or_raise(tmp_path / "plan.yaml")
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    rec = Recorder(engine)
    assert await engine.run() is False, rec.states
    assert rec.states["P::a"] is WsState.NEEDS_INPUT
    assert rec.details("P::a")[-1] == "asks: Which port should it use?"
    expected = summarize_stream("claude-stream-json", recorded)
    assert expected is not None
    with RunStore(tmp_path / "state") as store:
        (attempt,) = store.attempts(engine.run_id, "P::a")
    assert attempt.session_id == expected.session_id
    assert (attempt.input_tokens, attempt.output_tokens) == (
        expected.input_tokens,
        expected.output_tokens,
    )
    log = Path(engine.snapshot().workstreams["P::a"].log_path or "").read_text()
    assert "▸ Write HELLO.md" in log  # the transcript came back with the log


async def test_an_attempt_on_a_node_gets_its_port_in_its_env_and_checks(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    item = {
        "id": "a",
        "tool": "shell",
        "command": ["echo $MC_PORT > port.txt"],
        "shell": True,
        "checks": [{"name": "port", "run": 'test "$(cat port.txt)" = {port}', "shell": True}],
    }
    plan = write_plan(tmp_path, git_repo.path, [("P", 1, [item])])
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.details("P::a")
    port = int(_git(git_repo.origin, "show", "ws/P/a:port.txt"))
    store = RunStore(tmp_path / "state")
    try:
        assert store.attempts(engine.run_id, "P::a")[-1].ports == (port,)
    finally:
        store.close()


async def test_setup_runs_on_the_node_before_the_tool_and_a_failure_fails_it(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    good = {
        "id": "a",
        "tool": "shell",
        "command": ["test -f ready.txt && echo built > out.txt"],
        "shell": True,
        "setup": [{"name": "prepare", "run": "echo $MC_PORT > ready.txt", "shell": True}],
    }
    bad = {
        "id": "b",
        "tool": "shell",
        "command": ["echo never > out.txt"],
        "shell": True,
        "setup": [{"name": "deps", "run": "echo cannot install; exit 3", "shell": True}],
    }
    plan = write_plan(tmp_path, git_repo.path, [("P", 2, [good, bad])])
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    rec = Recorder(engine)
    assert await engine.run() is False
    assert rec.states["P::a"] is WsState.SUCCEEDED, rec.details("P::a")
    assert _git(git_repo.origin, "show", "ws/P/a:out.txt") == "built"
    log_a = Path(engine.snapshot().workstreams["P::a"].log_path or "").read_text()
    assert "──── set-up 'prepare': echo $MC_PORT > ready.txt" in log_a
    assert rec.states["P::b"] is WsState.FAILED
    assert rec.details("P::b")[-1] == "P::b: set-up 'deps' exited 3: cannot install"


async def test_untracked_files_of_the_checkout_reach_the_node_and_stay_out_of_the_commit(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    repo = git_repo.path
    (repo / ".gitignore").write_text(".env\nlocal/\n")
    (repo / ".worktreeinclude").write_text("local/\n")
    git_repo.git("add", ".gitignore", ".worktreeinclude")
    git_repo.git("commit", "-qm", "ignore")
    git_repo.git("push", "-q", "origin", "main")
    (repo / ".env").write_text("KEY=on the node\n")
    (repo / "local").mkdir()
    (repo / "local" / "settings.ini").write_text("x = 1\n")
    (repo / "local" / "pipe").unlink(missing_ok=True)
    os.mkfifo(repo / "local" / "pipe")
    item = {
        "id": "a",
        "tool": "shell",
        "command": ["cat .env local/settings.ini > seen.txt"],
        "shell": True,
        "copy": [".env"],
    }
    plan = write_plan(tmp_path, repo, [("P", 1, [item])])
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.details("P::a")
    assert _git(git_repo.origin, "show", "ws/P/a:seen.txt") == "KEY=on the node\nx = 1"
    files = _git(git_repo.origin, "ls-tree", "-r", "--name-only", "ws/P/a").split()
    assert ".env" not in files and "local/settings.ini" not in files
    log = Path(engine.snapshot().workstreams["P::a"].log_path or "").read_text()
    assert "──── files: copied .env, local/settings.ini" in log
