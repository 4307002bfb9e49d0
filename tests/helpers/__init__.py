"""Shared test helpers: the scripted agent (``agent.py``) and small readers for what it leaves."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

AGENT = Path(__file__).with_name("agent.py")
"""The scripted agent; its flags are documented at the top of the file."""


def agent_argv(*flags: str) -> list[str]:
    """The argv that runs the scripted agent with ``flags`` under this interpreter."""
    return [sys.executable, str(AGENT), *flags]


def read_pids(pid_file: Path) -> dict[str, list[int]]:
    """Pids the agent recorded with ``--pid-file``, by role (main, child, grandchild, daemon)."""
    roles: dict[str, list[int]] = {}
    if not pid_file.exists():
        return roles
    for line in pid_file.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            roles.setdefault(rec["role"], []).append(int(rec["pid"]))
    return roles


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; for test set-up only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def wait_for_pids(
    pid_file: Path, counts: dict[str, int], timeout: float = 10.0
) -> dict[str, list[int]]:
    """Wait until the agent has recorded at least ``counts[role]`` pids for each role."""

    def enough() -> bool:
        got = read_pids(pid_file)
        return all(len(got.get(role, [])) >= n for role, n in counts.items())

    if not wait_for(enough, timeout):
        raise AssertionError(f"agent recorded {read_pids(pid_file)}, expected at least {counts}")
    return read_pids(pid_file)


def mc_argv(*args: str, state: Path) -> list[str]:
    """``python -m mission_control ARGS --state-dir STATE``."""
    return [sys.executable, "-m", "mission_control", *args, "--state-dir", str(state)]


def run_leftovers(run_id: str) -> list[int]:
    """Live processes a run started (found by their ``MC_RUN_ID``), zombies aside."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MC_RUN_ID") == run_id and proc.status() != "zombie":
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found
