"""Failures the user can fix get exit 2 and one line saying what happened and what to do.

A full disk under the state folder (a real, tiny tmpfs), a damaged page of the ledger
(bytes overwritten in the SQLite file), a table dropped by hand, and ``tui`` without a
terminal; and in each case no run is left marked running by the start that failed.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mission_control.store.runs import DB_NAME, RunStore, WorkstreamRow
from tests.conftest import GitRepo
from tests.engine.engine_helpers import write_plan, ws

NO_PR = {"enabled": False}


def _mc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m mission_control ARGS`` with no terminal, as a script or CI job runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mission_control", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def _runs(state: Path) -> list[tuple[str, str]]:
    """(run id, status) of every run, read with plain SQLite (the store may refuse the file)."""
    with sqlite3.connect(state / DB_NAME) as conn:
        return conn.execute("SELECT run_id, status FROM runs ORDER BY created_at").fetchall()


# ------------------------------------------------------------------ full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a disk that really fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a tiny tmpfs, and mounting one needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the disk says it is full; returns it (remove it to free the disk)."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (64 << 10))
                out.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def test_a_full_disk_under_the_state_folder_is_one_line_and_leaves_no_run_running(
    git_repo: GitRepo, tmp_path: Path, small_disk: Path
) -> None:
    plan = write_plan(
        tmp_path, git_repo.path, [("P1", 1, [ws("A", "--write", "a.txt=a")])], pr=NO_PR
    )
    state = small_disk / "state"

    filler = _fill(small_disk)  # full before the first run: not even a ledger fits
    line = _one_line(_mc("run", str(plan.path), "--headless", "--state-dir", str(state)))
    assert "no space left" in line and "free space" in line, line
    filler.unlink()

    done = _mc("run", str(plan.path), "--headless", "--state-dir", str(state))
    assert done.returncode == 0, done.stdout + done.stderr
    [(first, status)] = _runs(state)
    assert status == "succeeded"

    filler = _fill(small_disk)  # full again: the next run cannot be recorded
    line = _one_line(_mc("run", str(plan.path), "--headless", "--fresh", "--state-dir", str(state)))
    assert "no space left for the run ledger" in line and str(state) in line, line
    filler.unlink()
    assert _runs(state) == [(first, "succeeded")]  # nothing half-made, nothing "running"


# ------------------------------------------------------------ damaged ledger


def _ledger_with_runs(state: Path, plan_path: Path, count: int) -> None:
    """A ledger of ``count`` runs of 40 workstreams each: tables over many pages."""
    rows = [
        WorkstreamRow(f"P1::W{i}", "P1", f"W{i}", f"w{i}", "shell", f"ws/P1/W{i}", f"/wt/{i}")
        for i in range(40)
    ]
    with RunStore(state) as store:
        for n in range(count):
            run_id = f"20260101-0000{n:02d}-abcd"
            store.create_run(run_id, plan_path, "test plan", {}, rows, at=1000.0 + n)
            store.finish_run(run_id, "succeeded", 1001.0 + n)
    with sqlite3.connect(state / DB_NAME) as conn:  # everything into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_damaged_ledger_page_is_one_line_with_the_fix(git_repo: GitRepo, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path, git_repo.path, [("P1", 1, [ws("A", "--write", "a.txt=a")])], pr=NO_PR
    )
    state = tmp_path / "state"
    _ledger_with_runs(state, plan.path, 3)
    db = state / DB_NAME
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        [root] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'workstreams'")
    with db.open("r+b") as raw:  # the workstreams table's root page, overwritten
        raw.seek((root[0] - 1) * page_size)
        raw.write(b"\xa5" * page_size)

    line = _one_line(_mc("status", "--state-dir", str(state)))
    assert line.startswith(f"mission-control: the run ledger {db} is damaged"), line
    assert f"mv {db} {db}.old" in line and "--state-dir" in line

    line = _one_line(_mc("run", str(plan.path), "--headless", "--state-dir", str(state)))
    assert f"the run ledger {db} is damaged" in line, line
    assert git_repo.git("branch", "--list", "ws/*") == ""  # nothing started


def test_a_missing_table_is_one_line_with_the_fix(git_repo: GitRepo, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path, git_repo.path, [("P1", 1, [ws("A", "--write", "a.txt=a")])], pr=NO_PR
    )
    state = tmp_path / "state"
    _ledger_with_runs(state, plan.path, 1)
    db = state / DB_NAME
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE attempts")

    for command in (["status"], ["run", str(plan.path), "--headless"]):
        line = _one_line(_mc(*command, "--state-dir", str(state)))
        assert f"the run ledger {db} has lost its table attempts" in line, line
        assert f"mv {db} {db}.old" in line
    assert _runs(state) == [("20260101-000000-abcd", "succeeded")]
    assert git_repo.git("branch", "--list", "ws/*") == ""


# ------------------------------------------------------------ tui, no terminal


def test_tui_without_a_terminal_refuses_at_once_and_records_nothing(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path, git_repo.path, [("P1", 1, [ws("A", "--write", "a.txt=a")])], pr=NO_PR
    )
    state = tmp_path / "state"
    line = _one_line(_mc("tui", str(plan.path), "--state-dir", str(state), timeout=60))
    assert "needs a terminal" in line and f"run {plan.path} --headless" in line, line
    assert not state.exists()
    assert git_repo.git("branch", "--list", "ws/*") == ""
