"""Everything under the state folder is private: folders 0700, files 0600, whatever the umask.

A real run (real repository, bare ``origin``, the scripted agent, a check so the finishing
steps write to the log) with a prompt file readable by its group, then a walk of the state
folder; and a folder left by an older mission-control, narrowed when the store opens it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mission_control.cli import main
from mission_control.remote.node_files import remove_empty
from mission_control.store.private import append_private, make_private_dir, open_private
from mission_control.store.runs import RunStore, WorkstreamRow
from tests.conftest import GitRepo
from tests.engine.engine_helpers import write_plan, ws


def _open_log(path: Path) -> Path:
    """Create an attempt's log the way the supervisor does (0600, in 0700 folders)."""
    make_private_dir(path.parent)
    os.close(open_private(path, os.O_WRONLY | os.O_APPEND))
    return path


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems start with: new files 0644, folders 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of the root and of every folder and file under it, by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _wrong(modes: dict[str, int], root: Path) -> dict[str, str]:
    return {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    }


@pytest.mark.usefixtures("usual_umask")
def test_a_run_leaves_only_private_folders_and_files(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("a secret plan\n")
    prompt.chmod(0o640)
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    ws(
                        "A",
                        "--write",
                        "a.txt=a",
                        "--lines",
                        "2",
                        prompt_file=str(prompt),
                        checks=[{"name": "smoke", "run": "echo smoke-ok", "shell": True}],
                    )
                ],
            )
        ],
        pr={"enabled": False},
    )
    state = tmp_path / "state"

    assert main(["run", str(plan.path), "--headless", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    with RunStore(state) as store:  # an open ledger has its -wal and -shm files
        run_id = store.list_runs(1)[0].run_id
        modes = _modes(state)
        attempt = Path("runs", run_id, "P1", "A")
        for made in (
            "state.db",
            "state.db-wal",
            "state.db-shm",
            f"runs/{run_id}",
            str(attempt / "attempt-1.log"),
            str(attempt / "attempt-1.exit"),
            str(attempt / "prompt.txt"),
        ):
            assert made in modes, sorted(modes)
        assert _wrong(modes, state) == {}
    assert "──── check ok" in (state / attempt / "attempt-1.log").read_text()
    assert (state / attempt / "prompt.txt").read_text() == "a secret plan\n"
    # The agent's own files keep the user's modes: the umask was left alone.
    written = plan.workstream("P1::A").worktree_path / "a.txt"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644


@pytest.mark.usefixtures("usual_umask")
def test_a_state_folder_from_before_is_made_private_when_opened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with RunStore(state) as store:
        store.create_run(
            "20260101-000000-abcd",
            tmp_path / "plan.yaml",
            "plan",
            {},
            [WorkstreamRow("P1::A", "P1", "A", "a", "shell", "ws/P1/A", str(tmp_path / "wt"))],
        )
    log = _open_log(state / "runs" / "20260101-000000-abcd" / "P1" / "A" / "attempt-1.log")
    # What an older mission-control left: everything readable by everyone.
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert stat.S_IMODE(log.stat().st_mode) == 0o644

    with RunStore(state) as store:
        assert store.get_run("20260101-000000-abcd") is not None
        modes = _modes(state)
    assert str(log.relative_to(state)) in modes
    assert _wrong(modes, state) == {}


def test_log_files_are_private_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        log = _open_log(tmp_path / "state" / "runs" / "r" / "P" / "W" / "attempt-1.log")
    finally:
        os.umask(old)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    for folder in (log.parent, log.parent.parent, tmp_path / "state" / "runs"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_write_survives_a_cleaner_removing_the_folders_it_is_making(tmp_path: Path) -> None:
    """A node forgets an ended attempt by removing its folders while they are empty
    (``remove_empty``); another attempt there may be making the same folders to write its
    first log line. The line must land: a folder taken away between the check and the
    ``mkdir`` under it, or between the ``mkdir`` and the open, is made again."""
    runs = tmp_path / "runs"
    runs.mkdir()
    rounds = 1500
    lost: list[BaseException] = []

    def writer(name: str) -> None:
        for i in range(rounds):
            log = runs / "run" / "P" / name / f"attempt-{i}.log"
            try:
                append_private(log, b"line\n")
            except OSError as err:
                lost.append(err)
                return
            log.unlink()
            remove_empty(log.parent, runs)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lost == []
