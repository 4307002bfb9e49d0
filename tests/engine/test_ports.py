"""A port each: unique across concurrent runs, checked free, reclaimed from dead holders."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from mission_control.engine.ports import Holder, PortRegistry, bindable
from tests.conftest import make_git_repo
from tests.engine.engine_helpers import write_plan


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
        ports = registry.claim("run-1", "P::A", 1, (port, port + 1), Holder.this_process())
        assert ports == (port + 1,)
    finally:
        listener.kill()
        listener.wait()


def test_a_claim_whose_holders_died_is_free_again(tmp_path: Path) -> None:
    port = _free_pair()
    registry = PortRegistry(tmp_path / "state")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = Holder(child.pid, psutil.Process(child.pid).create_time())
        assert registry.claim("run-1", "P::A", 2, (port, port + 1), dead) == (port, port + 1)
        me = Holder.this_process()
        with pytest.raises(Exception, match=r"no free port left in port_range"):
            registry.claim("run-2", "P::B", 1, (port, port + 1), me)
    finally:
        child.kill()
        child.wait()
    # The holder is gone (a crashed driver): its ports are handed out again.
    assert registry.claim("run-2", "P::B", 1, (port, port + 1), Holder.this_process()) == (port,)
    assert registry.held() == {port: ("run-2", "P::B")}
    registry.release("run-2", "P::B")
    assert registry.held() == {}


def test_the_message_when_the_range_is_used_up_says_how_to_fix_it(tmp_path: Path) -> None:
    port = _free_pair()
    registry = PortRegistry(tmp_path / "state")
    me = Holder.this_process()
    registry.claim("run-1", "P::A", 2, (port, port + 1), me)
    with pytest.raises(Exception) as caught:
        registry.claim("run-1", "P::B", 1, (port, port + 1), me)
    assert str(caught.value) == (
        f"P::B: no free port left in port_range [{port}, {port + 1}] (2 held by"
        " mission-control runs, the others by other programs): widen port_range in the plan,"
        " or lower `ports:`"
    )


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
    assert PortRegistry(tmp_path / "state-home" / "mission-control").held() == {}
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
    me = Holder.this_process()
    # Its driver died: nothing holds the ports; one was taken by another run meanwhile.
    registry.claim("run-2", "P::B", 1, (port + 1, port + 1), me)
    assert registry.reclaim("run-1", "P::A", (port, port + 1), me) == (port,)
    assert registry.held() == {port: ("run-1", "P::A"), port + 1: ("run-2", "P::B")}
