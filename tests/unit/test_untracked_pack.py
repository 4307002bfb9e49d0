"""Files packed for a node are unpacked only inside its worktree, never over anything."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from mission_control.git.untracked_pack import unpack_untracked
from tests.conftest import GitRepo


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info in entries:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def test_members_that_would_leave_the_worktree_are_skipped(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    worktree = tmp_path / "wt"
    git_repo.git("worktree", "add", "-q", "-b", "w", str(worktree))
    (worktree / "README.md").write_text("theirs\n")
    data = _tar(
        [
            _entry(".env"),
            _entry("conf/app.ini"),
            _entry("../escape.txt"),
            _entry("/abs.txt"),
            _entry("up", tarfile.SYMTYPE, "../../outside"),
            _entry("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
            _entry("ok-link", tarfile.SYMTYPE, "conf/app.ini"),
            _entry("dev", tarfile.CHRTYPE),
            _entry("README.md"),
        ],
        {
            ".env": b"A=1\n",
            "conf/app.ini": b"x\n",
            "../escape.txt": b"no",
            "/abs.txt": b"no",
            "README.md": b"ours\n",
        },
    )
    notes = unpack_untracked(data, worktree, [".env", "conf", "ok-link"])
    assert (worktree / ".env").read_text() == "A=1\n"
    assert (worktree / "conf" / "app.ini").read_text() == "x\n"
    assert (worktree / "ok-link").read_text() == "x\n"
    assert not (tmp_path / "escape.txt").exists() and not Path("/abs.txt").exists()
    assert not (worktree / "up").is_symlink() and not (worktree / "abs-link").is_symlink()
    assert (worktree / "README.md").read_text() == "theirs\n"
    assert notes == [
        "──── files: skipped ../escape.txt: leads out of the worktree",
        "──── files: skipped /abs.txt: leads out of the worktree",
        "──── files: skipped up: a symlink that leads out of the worktree",
        "──── files: skipped abs-link: a symlink that leads out of the worktree",
        "──── files: skipped dev: not a file, a folder or a symlink",
        "──── files: skipped README.md: already in the worktree",
    ]
