"""The repository lock holds across processes, and a `git worktree add` waits for it in git's
own `flock`: another mission-control on the same repository is not raced, and a holder
that dies lets go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mission_control.git.repo import git_under_lock, repo_lock
from tests.helpers import wait_for

if TYPE_CHECKING:
    from conftest import GitSandbox

_HOLDER = """
import sys, time
from pathlib import Path
from mission_control.git.repo import repo_lock
with repo_lock(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("held")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.02)
"""


def _hold(repo: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Another process holding ``repo``'s lock until the returned file exists."""
    held, release = tmp / "held", tmp / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(repo), str(held), str(release)],
        cwd=Path(__file__).resolve().parents[2],
    )
    assert wait_for(held.exists, timeout=60), "the other process never took the lock"
    return holder, release


def _add_in_thread(repo: Path, folder: Path) -> threading.Thread:
    def add() -> None:
        git_under_lock(["worktree", "add", "-q", "-b", "late", str(folder), "main"], repo)

    thread = threading.Thread(target=add)
    thread.start()
    return thread


def test_an_add_waits_while_another_process_holds_the_lock(
    local_git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = local_git_sandbox
    holder, release = _hold(sb.repo, tmp_path)
    folder = tmp_path / "late"
    adding = _add_in_thread(sb.repo, folder)
    try:
        adding.join(1.0)
        assert adding.is_alive(), "the add did not wait for the lock"
        assert not folder.exists()
    finally:
        release.write_text("")
        holder.wait(timeout=60)
    adding.join(60)
    assert sb.git(folder, "rev-parse", "--abbrev-ref", "HEAD") == "late"


def test_a_holder_that_dies_lets_go(local_git_sandbox: GitSandbox, tmp_path: Path) -> None:
    sb = local_git_sandbox
    holder, _ = _hold(sb.repo, tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    folder = tmp_path / "late"
    _add_in_thread(sb.repo, folder).join(60)
    assert folder.is_dir()
    with repo_lock(sb.repo):  # this process takes it too, and in it, git runs plainly
        git_under_lock(
            ["worktree", "add", "-q", "-b", "later", str(tmp_path / "b"), "main"], sb.repo
        )
    assert (tmp_path / "b").is_dir()
