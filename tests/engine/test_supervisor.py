"""The supervisor against real process trees started by the scripted agent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from mission_control.engine import pidfds
from mission_control.engine.process_tree import processes_with_env
from mission_control.engine.supervisor import (
    TOKEN_VAR,
    AttemptProcess,
    ExitStatus,
    adopt,
    decode_status,
    enable_subreaper,
    reap_orphans,
    spawn_attempt,
)
from tests import helpers
from tests.helpers import agent_argv, read_pids

DEADLINE = 60.0
"""Seconds a condition may take to come true: generous, a loaded machine is slow, not wrong."""


def wait_for(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    return helpers.wait_for(predicate, timeout)


def wait_for_pids(
    pid_file: Path, counts: dict[str, int], timeout: float = DEADLINE
) -> dict[str, list[int]]:
    return helpers.wait_for_pids(pid_file, counts, timeout)


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process model")

GRACE = 1.0


@pytest.fixture
def subreaper() -> Iterator[bool]:
    """Run the test with this process as child subreaper, as the engine runs."""
    on = enable_subreaper()
    yield on


@pytest.fixture
def no_subreaper() -> Iterator[None]:
    """Run the test with orphans going to init: the tree must be found without us."""
    enable_subreaper(False)
    yield
    enable_subreaper()


_started: list[tuple[int, float, Path]] = []


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Whatever a test leaves running (say, after a failed assert) is ended here."""
    yield
    while _started:
        pid, create_time, exit_file = _started.pop()
        proc = adopt(pid, create_time, exit_file)
        if proc is not None:
            proc.terminate_blocking(0.0)


def spawn(
    tmp: Path, *flags: str, env: dict[str, str] | None = None, stdin: Path | None = None
) -> AttemptProcess:
    proc = spawn_attempt(
        agent_argv(*flags),
        cwd=tmp,
        env=env or {},
        log_path=tmp / "attempt.log",
        stdin_path=stdin,
        exit_file=tmp / "attempt.exit",
    )
    _started.append((proc.pid, proc.create_time, proc.exit_file))
    return proc


def alive(pids: list[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                found.append(pid)
        except psutil.NoSuchProcess:
            pass
    return found


def all_pids(roles: dict[str, list[int]]) -> list[int]:
    return [pid for pids in roles.values() for pid in pids]


def cpu_time(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        t = p.cpu_times()
        total += t.user + t.system
    return total


# ------------------------------------------------------------------ exit status


async def test_exit_code_is_recorded_and_written_to_the_exit_file(tmp_path: Path) -> None:
    proc = await asyncio.to_thread(spawn, tmp_path, "--exit", "3")
    status = await asyncio.wait_for(proc.wait(), 60)
    assert status == ExitStatus(3, None)
    assert proc.poll() == status
    assert (tmp_path / "attempt.exit").read_text().strip() == "3"
    assert "child" in repr(proc)


async def test_a_tool_killed_by_a_signal_is_reported_as_that_signal(tmp_path: Path) -> None:
    proc = await asyncio.to_thread(spawn, tmp_path, "--kill-self", "USR1")
    status = await asyncio.wait_for(proc.wait(), 60)
    assert status == ExitStatus(None, signal.SIGUSR1)
    assert (tmp_path / "attempt.exit").read_text().strip() == str(128 + signal.SIGUSR1)


async def test_the_wrapper_shell_killed_directly_reports_sigkill(tmp_path: Path) -> None:
    proc = await asyncio.to_thread(spawn, tmp_path, "--sleep", "30")
    os.kill(proc.pid, signal.SIGKILL)
    status = await asyncio.wait_for(proc.wait(), 60)
    assert status.signal == signal.SIGKILL and status.exit_code is None
    assert not (tmp_path / "attempt.exit").exists()
    await proc.terminate(GRACE)  # the orphaned agent must not outlive the test


def test_decode_status() -> None:
    assert decode_status(0) == ExitStatus(0, None)
    assert decode_status(1) == ExitStatus(1, None)
    assert decode_status(-9) == ExitStatus(None, 9)
    assert decode_status(143) == ExitStatus(None, 15)
    assert decode_status(128) == ExitStatus(128, None)
    assert decode_status(255) == ExitStatus(255, None)
    assert ExitStatus(None, 15).describe() == "killed by SIGTERM"
    assert ExitStatus(2, None).describe() == "exited 2"


async def test_wait_can_be_cancelled_and_awaited_again(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(spawn, tmp_path, "--pid-file", str(pid_file), "--forever")
    main = (await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1}))["main"][0]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(proc.wait(), 0.1)
    both = asyncio.gather(proc.wait(), proc.wait())
    os.kill(main, signal.SIGUSR1)
    first, second = await asyncio.wait_for(both, 60)
    assert first == second == ExitStatus(None, signal.SIGUSR1)


def pidfd_pid(fd: int) -> int | None:
    """The pid a pidfd refers to, as the kernel tells (None if ``fd`` is no pidfd)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return None


@contextlib.contextmanager
def watched_pidfds(
    proc: AttemptProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[list[int | None], list[str]]]:
    """Record the pids whose pidfds the loop watches, and when ``proc`` collects its status.

    ``wait()`` must arm a pidfd on the loop's selector and collect the status only once
    the kernel says the process ended: no thread blocks, no timer polls.
    """
    if not pidfds._HAS_PIDFD:
        pytest.skip("no pidfds on this kernel")
    loop = asyncio.get_running_loop()
    watched: list[int | None] = []
    collected: list[str] = []
    add_reader = loop.add_reader
    collect = proc._collect_blocking

    def spy_reader(fd: int, callback: Callable[..., object], *args: object) -> None:
        watched.append(pidfd_pid(fd))
        add_reader(fd, callback, *args)

    def spy_collect() -> ExitStatus:
        collected.append("collect")
        return collect()

    monkeypatch.setattr(loop, "add_reader", spy_reader)
    monkeypatch.setattr(proc, "_collect_blocking", spy_collect)
    yield watched, collected


async def _until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_wait_is_woken_by_the_kernel_not_by_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(spawn, tmp_path, "--pid-file", str(pid_file), "--forever")
    main = (await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1}))["main"][0]
    with watched_pidfds(proc, monkeypatch) as (watched, collected):
        waiter = asyncio.ensure_future(proc.wait())
        await _until(lambda: bool(watched))
        assert watched == [proc.pid], "the root's pidfd sits on the loop's selector"
        await asyncio.sleep(0.2)
        assert collected == [] and not waiter.done(), "nothing looks before the exit"
        os.kill(main, signal.SIGUSR1)
        assert await asyncio.wait_for(waiter, 60) == ExitStatus(None, signal.SIGUSR1)
        assert collected == ["collect"], "collected once, when the pidfd turned readable"


# ------------------------------------------------------------------- io and env


async def test_env_stdin_and_output_reach_the_tool_and_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INHERITED_VAR", "from-parent")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("do the thing 'quoted' $(not run)")
    log = tmp_path / "attempt.log"
    log.write_text("earlier line\n")
    env = {
        "MC_RUN_ID": "r1",
        "MC_PHASE": "PH1",
        "MC_WORKSTREAM": "A",
        "MC_WORKTREE": str(tmp_path),
        "MC_ATTEMPT": "2",
        "PLAN_VAR": "x y",
    }
    names = [*env, "INHERITED_VAR"]
    flags = ["--echo-prompt", *(f for n in names for f in ("--print-env", n))]
    proc = await asyncio.to_thread(spawn, tmp_path, *flags, env=env, stdin=prompt)
    assert await asyncio.wait_for(proc.wait(), 60) == ExitStatus(0, None)
    text = log.read_text()
    assert text.startswith("earlier line\n"), "the log is appended to, never truncated"
    assert "prompt: do the thing 'quoted' $(not run)" in text
    for name, value in {**env, "INHERITED_VAR": "from-parent"}.items():
        assert f"env {name}={value}" in text


async def test_stderr_goes_to_the_log_and_stdin_defaults_to_devnull(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); print(repr(sys.stdin.read()))"
    proc = await asyncio.to_thread(
        spawn_attempt,
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={},
        log_path=tmp_path / "logs" / "a.log",
        stdin_path=None,
        exit_file=tmp_path / "logs" / "a.exit",
    )
    assert (await asyncio.wait_for(proc.wait(), 60)).ok
    lines = (tmp_path / "logs" / "a.log").read_text().splitlines()
    assert sorted(lines) == sorted(["out", "err", "''"])


async def test_each_attempt_has_its_own_session_and_cwd(tmp_path: Path) -> None:
    proc = await asyncio.to_thread(spawn, tmp_path, "--write", "made.txt=hello", "--sleep", "5")
    try:
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)
        made = tmp_path / "made.txt"
        # The file exists a moment before its text is in it.
        assert wait_for(lambda: made.exists() and made.read_text() == "hello")
        assert abs(psutil.Process(proc.pid).create_time() - proc.create_time) < 0.01
    finally:
        await proc.terminate(GRACE)


async def test_fail_first_fails_only_the_first_attempt(tmp_path: Path) -> None:
    codes = []
    for attempt in ("1", "2"):
        proc = await asyncio.to_thread(spawn, tmp_path, "--fail-first", env={"MC_ATTEMPT": attempt})
        codes.append((await asyncio.wait_for(proc.wait(), 60)).exit_code)
    assert codes == [1, 0]


# -------------------------------------------------------------------- terminate


async def _check_whole_tree_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn,
        tmp_path,
        "--pid-file", str(pid_file),
        "--children", "2",
        "--grandchildren", "1",
        "--daemon",
        "--ignore-term",
        "--forever",
    )  # fmt: skip
    roles = await asyncio.to_thread(
        wait_for_pids, pid_file, {"main": 1, "child": 2, "grandchild": 2, "daemon": 1}
    )
    before = set(all_pids(roles)) | {proc.pid}
    assert len(before) == 7
    daemon = roles["daemon"][0]
    assert os.getsid(daemon) != proc.pid, "the daemon left the attempt's session"

    started = time.monotonic()
    result = await asyncio.wait_for(proc.terminate(GRACE), 120)
    took = time.monotonic() - started

    assert result.survivors == () and result.clean
    assert set(result.terminated) == before, "TERM went to every process of the tree"
    assert set(all_pids(roles)) <= set(result.killed), "all of them ignored TERM"
    assert alive(sorted(before)) == []
    assert took >= GRACE, "the tree had its grace period before KILL"
    # The shell outlived the tool, so it recorded how the tool ended.
    assert result.status == ExitStatus(None, signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 60) == ExitStatus(None, signal.SIGKILL)
    assert (tmp_path / "attempt.exit").read_text().strip() == "137"


async def test_terminate_kills_a_term_ignoring_tree_and_its_daemon(
    tmp_path: Path, subreaper: bool
) -> None:
    await _check_whole_tree_is_killed(tmp_path)


async def test_terminate_finds_the_daemon_without_a_subreaper(
    tmp_path: Path, no_subreaper: None
) -> None:
    await _check_whole_tree_is_killed(tmp_path)


async def test_tree_lists_every_process_and_remembers_the_daemon(
    tmp_path: Path, subreaper: bool
) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "1", "--grandchildren", "2",
        "--daemon", "--forever",
    )  # fmt: skip
    try:
        roles = await asyncio.to_thread(
            wait_for_pids, pid_file, {"main": 1, "child": 1, "grandchild": 2, "daemon": 1}
        )
        tree = await asyncio.to_thread(proc._tree.scan, full=True)
        assert {p.pid for p in tree} == set(all_pids(roles)) | {proc.pid}
        assert tree[0].pid == proc.pid, "parents come first"
        cheap = await asyncio.to_thread(proc.members)
        assert {p.pid for p in cheap} == {p.pid for p in tree}
        daemon = psutil.Process(roles["daemon"][0])
        assert daemon.environ().get(TOKEN_VAR), "the attempt's token marks its processes"
    finally:
        result = await proc.terminate(GRACE)
    assert result.clean and result.killed == ()
    assert result.status == ExitStatus(None, signal.SIGTERM)


async def test_wait_outlasts_a_terminate_still_killing_the_tree(
    tmp_path: Path, subreaper: bool
) -> None:
    """The tool dies of TERM at once, its child ignores TERM until the grace period ends.

    The root shell ends with the tool, long before the child is killed; a caller
    that takes ``wait()`` returning for the end of the attempt must not find the
    child still running.
    """
    pid_file = tmp_path / "child.pid"
    child = tmp_path / "child.sh"
    # The child records its pid only once it ignores TERM (exec keeps both).
    child.write_text(
        f"trap '' TERM\necho $$ > {pid_file}.new\nmv {pid_file}.new {pid_file}\nexec sleep 300\n"
    )
    proc = await asyncio.to_thread(
        spawn_attempt,
        ["/bin/sh", "-c", f"/bin/sh {child} & wait"],
        cwd=tmp_path,
        env={},
        log_path=tmp_path / "attempt.log",
        stdin_path=None,
        exit_file=tmp_path / "attempt.exit",
    )
    _started.append((proc.pid, proc.create_time, proc.exit_file))
    assert await asyncio.to_thread(wait_for, pid_file.exists)
    sleeper = int(pid_file.read_text())

    waiting = asyncio.ensure_future(proc.wait())
    stopping = asyncio.ensure_future(proc.terminate(GRACE))
    status = await asyncio.wait_for(waiting, GRACE + 60)
    assert alive([sleeper]) == [], "the attempt looked over while its child still ran"
    result = await asyncio.wait_for(stopping, 60)
    assert result.clean and sleeper in result.killed
    assert status == ExitStatus(None, signal.SIGTERM)


async def test_kill_takes_the_tool_only_after_its_descendants(
    tmp_path: Path, subreaper: bool
) -> None:
    """The shell ends the attempt as soon as the tool dies, so the tool is killed last."""
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "2", "--grandchildren", "1",
        "--daemon", "--ignore-term", "--forever",
    )  # fmt: skip
    roles = await asyncio.to_thread(
        wait_for_pids, pid_file, {"main": 1, "child": 2, "grandchild": 2, "daemon": 1}
    )
    result = await proc.terminate(0.0)
    assert result.clean
    assert set(all_pids(roles)) == set(result.killed)
    assert result.killed[-1] == roles["main"][0], result.killed
    assert alive(all_pids(roles)) == []


async def test_processes_with_env_finds_the_marked_tree_with_live_handles(
    tmp_path: Path, subreaper: bool
) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "1", "--daemon", "--forever",
        env={"MC_MARK": "x y"},
    )  # fmt: skip
    try:
        roles = await asyncio.to_thread(
            wait_for_pids, pid_file, {"main": 1, "child": 1, "daemon": 1}
        )
        token = psutil.Process(proc.pid).environ()[TOKEN_VAR]
        found = await asyncio.to_thread(processes_with_env, {TOKEN_VAR: token, "MC_MARK": "x y"})
        assert {p.pid for p in found} == {proc.pid, *all_pids(roles)}
        assert all(p.is_running() for p in found)
        assert await asyncio.to_thread(processes_with_env, {TOKEN_VAR: token, "MC_MARK": "x"}) == []
        skipped = await asyncio.to_thread(
            processes_with_env, {TOKEN_VAR: token}, exclude={proc.pid}
        )
        assert {p.pid for p in skipped} == set(all_pids(roles))
    finally:
        await proc.terminate(GRACE)


async def test_terminate_a_cooperative_tree_needs_no_kill(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "2", "--forever"
    )
    roles = await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1, "child": 2})
    # A grace far longer than the deadline: the terminate ends when the tree has gone.
    result = await asyncio.wait_for(proc.terminate(600.0), 120)
    assert result.killed == () and result.clean
    assert alive([*all_pids(roles), proc.pid]) == []
    assert result.status == ExitStatus(None, signal.SIGTERM)


async def test_terminate_after_exit_is_harmless(tmp_path: Path) -> None:
    proc = await asyncio.to_thread(spawn, tmp_path, "--exit", "0")
    await asyncio.wait_for(proc.wait(), 60)
    result = await proc.terminate(GRACE)
    assert result.terminated == () and result.killed == () and result.clean
    assert result.status == ExitStatus(0, None)


async def test_terminate_with_zero_grace_kills_at_once(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--ignore-term", "--forever"
    )
    main = (await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1}))["main"][0]
    result = await asyncio.wait_for(proc.terminate(0.0), 120)
    assert main in result.terminated and main in result.killed, "TERM, then KILL at once"
    assert result.clean and result.status is not None and result.status.signal == signal.SIGKILL


# ------------------------------------------------------------------ pause/resume


async def test_pause_stops_the_whole_tree_and_resume_continues_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    log = tmp_path / "attempt.log"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "1", "--child-busy",
        "--lines", "-1", "--rate", "50",
    )  # fmt: skip
    try:
        roles = await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1, "child": 1})
        assert await asyncio.to_thread(wait_for, lambda: log.stat().st_size > 200)

        stopped = await asyncio.to_thread(proc.pause)
        assert set(stopped) == set(all_pids(roles)) | {proc.pid}
        assert proc.paused
        tree = [psutil.Process(pid) for pid in stopped]

        def all_stopped() -> bool:
            return {p.status() for p in tree} == {psutil.STATUS_STOPPED}

        assert await asyncio.to_thread(wait_for, all_stopped), "the signals landed"
        size, cpu = log.stat().st_size, cpu_time(tree)
        await asyncio.sleep(1.0)
        assert log.stat().st_size == size, "a paused agent writes nothing"
        assert cpu_time(tree) == pytest.approx(cpu, abs=0.02), "a paused tree uses no CPU"

        await asyncio.to_thread(proc.resume)
        assert not proc.paused
        assert await asyncio.to_thread(wait_for, lambda: log.stat().st_size > size + 100)
        assert await asyncio.to_thread(wait_for, lambda: cpu_time(tree) > cpu + 0.05)
        assert psutil.STATUS_STOPPED not in {p.status() for p in tree}
    finally:
        result = await proc.terminate(GRACE)
    assert result.clean


async def test_terminate_ends_a_paused_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "1", "--forever"
    )
    roles = await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1, "child": 1})
    await asyncio.to_thread(proc.pause)
    # A grace far longer than the deadline: TERM is handled once the tree is continued.
    result = await asyncio.wait_for(proc.terminate(600.0), 120)
    assert result.clean and result.killed == ()
    assert alive(all_pids(roles)) == []


# ------------------------------------------------------------------------ adopt


_FOREIGN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from mission_control.engine.supervisor import spawn_attempt
    tmp = Path(sys.argv[1])
    proc = spawn_attempt(
        sys.argv[2:], cwd=tmp, env={}, log_path=tmp / "attempt.log",
        stdin_path=None, exit_file=tmp / "attempt.exit",
    )
    print(json.dumps({"pid": proc.pid, "create_time": proc.create_time}))
    """
)


def spawn_foreign(tmp: Path, *flags: str) -> tuple[int, float]:
    """Start an attempt from another, short-lived mission-control process."""
    out = subprocess.run(
        [sys.executable, "-c", _FOREIGN, str(tmp), *agent_argv(*flags)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    info = json.loads(out.stdout)
    _started.append((int(info["pid"]), float(info["create_time"]), tmp / "attempt.exit"))
    return int(info["pid"]), float(info["create_time"])


async def test_adopt_waits_for_a_process_that_is_not_our_child(
    tmp_path: Path, no_subreaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, create_time = await asyncio.to_thread(
        spawn_foreign, tmp_path, "--sleep", "1", "--exit", "7"
    )
    assert psutil.Process(pid).ppid() != os.getpid()
    proc = adopt(pid, create_time, tmp_path / "attempt.exit")
    assert proc is not None and "adopted" in repr(proc)
    with watched_pidfds(proc, monkeypatch) as (watched, collected):
        status = await asyncio.wait_for(proc.wait(), 60)
    assert status == ExitStatus(7, None)
    assert watched == [pid], "woken by the exit itself through a pidfd, not by a poll"
    assert collected == ["collect"]


async def test_adopt_reparented_to_us_reaps_it(tmp_path: Path, subreaper: bool) -> None:
    pid, create_time = await asyncio.to_thread(
        spawn_foreign, tmp_path, "--sleep", "0.5", "--exit", "5"
    )
    if subreaper:
        assert psutil.Process(pid).ppid() == os.getpid()
    proc = adopt(pid, create_time, tmp_path / "attempt.exit")
    assert proc is not None and "adopted" in repr(proc)
    assert await asyncio.wait_for(proc.wait(), 60) == ExitStatus(5, None)
    assert not psutil.pid_exists(pid), "the zombie was reaped"


async def test_adopt_then_terminate_a_foreign_tree(tmp_path: Path, no_subreaper: None) -> None:
    pid_file = tmp_path / "pids"
    pid, create_time = await asyncio.to_thread(
        spawn_foreign, tmp_path, "--pid-file", str(pid_file), "--children", "1", "--daemon",
        "--ignore-term", "--forever",
    )  # fmt: skip
    roles = await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1, "child": 1, "daemon": 1})
    proc = adopt(pid, create_time, tmp_path / "attempt.exit")
    assert proc is not None
    waiter = asyncio.ensure_future(proc.wait())
    result = await proc.terminate(GRACE)
    assert result.clean
    assert alive([*all_pids(roles), pid]) == []
    assert await asyncio.wait_for(waiter, 60) == ExitStatus(None, signal.SIGKILL)


async def test_adopt_refuses_a_gone_or_different_process(tmp_path: Path) -> None:
    proc = await asyncio.to_thread(spawn, tmp_path, "--exit", "0")
    await asyncio.wait_for(proc.wait(), 60)
    assert adopt(proc.pid, proc.create_time, tmp_path / "attempt.exit") is None
    me = psutil.Process()
    assert adopt(me.pid, me.create_time() - 100, tmp_path / "attempt.exit") is None


async def test_adopt_with_no_exit_file_reports_unknown(tmp_path: Path, no_subreaper: None) -> None:
    pid, create_time = await asyncio.to_thread(spawn_foreign, tmp_path, "--forever")
    proc = adopt(pid, create_time, tmp_path / "attempt.exit")
    assert proc is not None
    waiter = asyncio.ensure_future(proc.wait())
    await asyncio.sleep(0.2)
    assert not waiter.done()
    os.kill(pid, signal.SIGKILL)  # the shell dies before it can write the file
    status = await asyncio.wait_for(waiter, 60)
    assert status == ExitStatus(None, None)
    await proc.terminate(GRACE)


# ------------------------------------------------------------------------ reaping


async def test_orphans_reparented_to_us_are_reaped(tmp_path: Path, subreaper: bool) -> None:
    if not subreaper:
        pytest.skip("needs a child subreaper (Linux)")
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "1", "--daemon",
    )  # fmt: skip
    roles = await asyncio.to_thread(wait_for_pids, pid_file, {"child": 1, "daemon": 1})
    orphans = [roles["child"][0], roles["daemon"][0]]
    # The daemon has left the session: a full scan remembers it.
    tree = await asyncio.to_thread(proc._tree.scan, full=True)
    assert set(orphans) <= {p.pid for p in tree}
    assert await asyncio.wait_for(proc.wait(), 60) == ExitStatus(0, None)
    for pid in orphans:  # they end after the attempt, as our orphans
        os.kill(pid, signal.SIGKILL)

    def zombies_of_ours() -> bool:
        try:
            return all(
                psutil.Process(p).ppid() == os.getpid()
                and psutil.Process(p).status() == psutil.STATUS_ZOMBIE
                for p in orphans
            )
        except psutil.NoSuchProcess:
            return False

    assert await asyncio.to_thread(wait_for, zombies_of_ours)
    # A child of ours that someone else will wait for must keep its status.
    other = subprocess.Popen(["/bin/sh", "-c", "exit 5"])
    assert await asyncio.to_thread(
        wait_for, lambda: psutil.Process(other.pid).status() == psutil.STATUS_ZOMBIE
    )
    reaped = await asyncio.to_thread(reap_orphans)
    assert sorted(reaped) == sorted(orphans)
    assert not any(psutil.pid_exists(p) for p in orphans)
    assert other.wait(5) == 5


def test_read_pids_helper(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    pid_file.write_text('{"role": "main", "pid": 1}\n{"role": "child", "pid": 2}\n')
    assert read_pids(pid_file) == {"main": [1], "child": [2]}


async def test_without_pidfds_wait_and_terminate_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel has no pidfds: a thread blocks in waitpid, psutil waits for the tree."""
    monkeypatch.setattr(pidfds, "_HAS_PIDFD", False)
    pid_file = tmp_path / "pids"
    proc = await asyncio.to_thread(
        spawn, tmp_path, "--pid-file", str(pid_file), "--children", "1", "--ignore-term",
        "--forever",
    )  # fmt: skip
    roles = await asyncio.to_thread(wait_for_pids, pid_file, {"main": 1, "child": 1})
    waiter = asyncio.ensure_future(proc.wait())
    result = await proc.terminate(GRACE)
    assert result.clean and set(all_pids(roles)) <= set(result.killed)
    assert await asyncio.wait_for(waiter, 60) == ExitStatus(None, signal.SIGKILL)
    assert alive(all_pids(roles)) == []


def test_scripted_agent_prints_colours_at_a_rate_and_edits_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("first\n")
    prompt = tmp_path / "p.txt"
    prompt.write_text("from a file")
    started = time.monotonic()
    out = subprocess.run(
        agent_argv(
            "--lines", "10", "--rate", "20", "--color", "--prompt-file", str(prompt),
            "--append", "notes.txt=second", "--write", "sub/new.txt=made", "--exit", "6",
        ),
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    assert out.returncode == 6
    lines = out.stdout.splitlines()
    assert lines[0] == "prompt: from a file"
    assert len(lines) == 11 and all(line.startswith("\x1b[3") for line in lines[1:])
    assert "line 10 of 10\x1b[0m" in lines[-1]
    assert took >= 0.45, "ten lines at 20 per second take half a second"
    assert (tmp_path / "notes.txt").read_text() == "first\nsecond\n"
    assert (tmp_path / "sub" / "new.txt").read_text() == "made"
