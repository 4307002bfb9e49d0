"""A port each: unique across concurrent runs, checked free, free again once its holders end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mission_control.engine.ports import PortRegistry, bindable
from tests.conftest import make_git_repo
from tests.engine.engine_helpers import write_plan
from tests.helpers import wait_for


def _free_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` free right now."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("", 0))
            port = int(sock.getsockname()[1])
        if port < 65535 and bindable(port + 1):
            return port
    raise AssertionError("no two free ports in a row")


def test_a_port_another_program_listens_on_is_skipped(tmp_path: Path) -> None:
    port = _free_pair()
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
            "print('ready', flush=True); time.sleep(60)",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        registry = PortRegistry(tmp_path / "state")
        claim = registry.claim("run-1", "P::A", 1, (port, port + 1))
        assert claim.ports == (port + 1,)
    finally:
        listener.kill()
        listener.wait()


_HOLDER = """
import subprocess, sys, time
from pathlib import Path
from mission_control.engine.ports import PortRegistry
low = int(sys.argv[2])
claim = PortRegistry(Path(sys.argv[1])).claim("run-1", "P::A", 2, (low, low + 1))
# The tool inherits the locks of its ports, as an attempt's tool does.
tool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=claim.fds)
print(tool.pid, flush=True)
time.sleep(60 if sys.argv[3] == "stay" else 0)
"""


def _claimed_elsewhere(state: Path, port: int, stay: bool) -> tuple[subprocess.Popen[str], int]:
    """A driver in another process claims ``port`` and ``port + 1`` and starts a tool
    holding them; the driver, and the tool's pid."""
    driver = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(state), str(port), "stay" if stay else "go"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    return driver, int(driver.stdout.readline())


def _free_again(registry: PortRegistry, port: int) -> bool:
    try:
        claim = registry.claim("run-9", "P::Z", 1, (port, port))
    except Exception:
        return False
    claim.release()
    return True


def test_ports_stay_held_while_the_tool_lives_after_its_driver_died(tmp_path: Path) -> None:
    port = _free_pair()
    state = tmp_path / "state"
    registry = PortRegistry(state)
    driver, tool = _claimed_elsewhere(state, port, stay=False)
    assert driver.wait(timeout=60) == 0  # the driver is gone; its tool runs on
    try:
        with pytest.raises(Exception, match=r"no free port left in port_range"):
            registry.claim("run-2", "P::B", 1, (port, port + 1))
        assert registry.reclaim("run-1", "P::A", (port, port + 1)).ports == (port, port + 1)
        assert registry.reclaim("run-2", "P::B", (port,)).ports == ()
    finally:
        os.kill(tool, 9)
    # Its last holder is gone (a crash, a kill): the ports are handed out again.
    assert wait_for(lambda: _free_again(registry, port), timeout=30)
    claim = registry.claim("run-2", "P::B", 2, (port, port + 1))
    assert claim.ports == (port, port + 1)
    claim.release()
    assert _free_again(registry, port) and _free_again(registry, port + 1)


def test_a_killed_driver_lets_go_of_the_ports_its_tool_never_held(tmp_path: Path) -> None:
    port = _free_pair()
    state = tmp_path / "state"
    driver, tool = _claimed_elsewhere(state, port, stay=True)
    os.kill(tool, 9)
    assert not _free_again(PortRegistry(state), port)  # the driver still holds them
    driver.kill()
    driver.wait(timeout=60)
    assert wait_for(lambda: _free_again(PortRegistry(state), port), timeout=30)


def test_the_lock_files_are_private(tmp_path: Path) -> None:
    port = _free_pair()
    registry = PortRegistry(tmp_path / "state")
    claim = registry.claim("run-1", "P::A", 1, (port, port + 1))
    folder = tmp_path / "state" / "ports"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / f"{port}.lock").stat().st_mode & 0o777 == 0o600
    claim.release()


def test_the_message_when_the_range_is_used_up_says_how_to_fix_it(tmp_path: Path) -> None:
    port = _free_pair()
    registry = PortRegistry(tmp_path / "state")
    held = registry.claim("run-1", "P::A", 2, (port, port + 1))
    with pytest.raises(Exception) as caught:
        registry.claim("run-1", "P::B", 1, (port, port + 1))
    assert str(caught.value) == (
        f"P::B: no free port left in port_range [{port}, {port + 1}] (2 held by"
        " mission-control runs, the others by other programs): widen port_range in the plan,"
        " or lower `ports:`"
    )
    held.release()


def test_ports_are_unique_across_two_concurrent_runs_and_released_after(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    # Each tool writes its ports, then waits until all four attempts run at once.
    barrier = textwrap.dedent(
        f"""
        import os, sys, time
        name = os.environ["MC_RUN_ID"] + "-" + os.environ["MC_WORKSTREAM"]
        open(os.path.join({str(seen)!r}, name), "w").write(
            os.environ["MC_PORT_0"] + " " + os.environ["MC_PORT_1"])
        deadline = time.time() + 60
        while len(os.listdir({str(seen)!r})) < 4 and time.time() < deadline:
            time.sleep(0.05)
        sys.exit(0 if len(os.listdir({str(seen)!r})) == 4 else 1)
        """
    )
    tool = {"tool": "shell", "command": [sys.executable, "-c", barrier], "ports": 2}
    plans = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        repo = make_git_repo(folder)
        plan = write_plan(
            folder,
            repo.path,
            [("P1", 2, [{"id": "A", **tool}, {"id": "B", **tool}])],
            push=False,
        )
        plans.append(plan.path)
    # A registry of this test's own: other tests' runs may hold ports meanwhile.
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state-home")}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "mission_control", "run", str(path), "--headless"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in plans
    ]
    outputs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    ports = [int(p) for f in seen.iterdir() for p in f.read_text().split()]
    assert len(ports) == 8 and len(set(ports)) == 8, ports
    assert all(20000 <= p <= 29999 for p in ports)
    registry = PortRegistry(tmp_path / "state-home" / "mission-control")
    assert all(_free_again(registry, p) for p in ports)  # every claim was let go
    status = subprocess.run(
        [sys.executable, "-m", "mission_control", "status", "--plan", str(plans[0])],
        env=env,
        capture_output=True,
        text=True,
        cwd=plans[0].parent,
    )
    assert status.returncode == 0, status.stderr
    header = status.stdout.splitlines()[1].split()
    assert header[:4] == ["WORKSTREAM", "STATE", "TRY", "PORTS"]
    row = next(line.split() for line in status.stdout.splitlines() if line.startswith("P1::A"))
    a_ports = [int(p) for p in row[3].split(",")]
    assert len(a_ports) == 2 and set(a_ports) <= set(ports)


def test_a_resumed_attempt_holds_its_recorded_ports_again(tmp_path: Path) -> None:
    port = _free_pair()
    registry = PortRegistry(tmp_path / "state")
    # Its driver died: nothing holds the ports; one was taken by another run meanwhile.
    other = registry.claim("run-2", "P::B", 1, (port + 1, port + 1))
    claim = registry.reclaim("run-1", "P::A", (port, port + 1))
    assert claim.ports == (port,)
    assert not _free_again(registry, port)
    claim.release()
    other.release()
    assert _free_again(registry, port) and _free_again(registry, port + 1)


def test_an_attempts_tool_holds_its_port_after_mission_control_is_killed(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "port"
    tool = textwrap.dedent(
        f"""
        import os, time
        open({str(seen)!r}, "w").write(os.environ["MC_PORT"] + " " + str(os.getpid()))
        time.sleep(120)
        """
    )
    repo = make_git_repo(tmp_path / "r")
    plan = write_plan(
        tmp_path,
        repo.path,
        [("P1", 1, [{"id": "A", "tool": "shell", "command": [sys.executable, "-c", tool]}])],
        push=False,
    )
    state_home = tmp_path / "state-home"
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "mission_control", "run", str(plan.path), "--headless"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_for(lambda: seen.exists() and len(seen.read_text().split()) == 2, timeout=120)
    port, pid = (int(word) for word in seen.read_text().split())
    registry = PortRegistry(state_home / "mission-control")
    try:
        driver.kill()
        driver.wait(timeout=60)
        assert not _free_again(registry, port)  # the tool still runs: its port is held
    finally:
        os.killpg(os.getpgid(pid), 9)  # the attempt's session: its wrapper and the tool
    assert wait_for(lambda: _free_again(registry, port), timeout=30)
