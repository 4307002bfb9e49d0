"""A worktree left half-made by a crash is finished before any tool runs in it.

Each test makes by hand a state that a kill during ``prepare_worktree`` (or a
``git worktree add`` it ran) can leave, then runs a plan through the real engine:
the tool must see every file of the base, and the branch pushed must hold the
tool's change and nothing else (above all, no deletion of the project).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mission_control.engine import events as ev
from mission_control.engine.states import WsState
from mission_control.git.worktrees import STAGE_FILE, commit_work
from tests.engine.engine_helpers import Recorder, make_engine, write_plan

if TYPE_CHECKING:
    from conftest import GitSandbox

BASE_FILES = ("README.md", "f.txt", ".gitignore")
# The tool fails unless it sees every file of the base; then it adds one file.
SEES_THE_BASE = " && ".join(f"test -f {name}" for name in BASE_FILES)


def _tool(ws_id: str, deps: list[str] | None = None, extra_check: str = "") -> dict[str, object]:
    check = SEES_THE_BASE + (f" && {extra_check}" if extra_check else "")
    return {
        "id": ws_id,
        "name": f"workstream {ws_id}",
        "tool": "shell",
        "command": [f"{check} && echo {ws_id} > {ws_id.lower()}.txt"],
        "shell": True,
        "depends_on": deps or [],
    }


async def _run(sb: GitSandbox, tmp_path: Path, *workstreams: dict[str, object]) -> Recorder:
    plan = write_plan(tmp_path, sb.repo, [("P1", 2, list(workstreams))])
    # what a crash left is built on, as a resumed run would (not refused as an earlier run's)
    engine = make_engine(plan, tmp_path / "state", existing_branches="continue")
    rec = Recorder(engine)
    await engine.run()
    return rec


def _added_on_origin(sb: GitSandbox, branch: str, base: str) -> str:
    """What the pushed branch changes against ``base``, one ``STATUS\\tPATH`` a line."""
    assert sb.origin is not None
    return sb.git(sb.origin, "diff", "--name-status", "--no-renames", base, branch)


def _add_without_checkout(sb: GitSandbox, ws_id: str, start: str = "origin/main") -> Path:
    """What a kill right after ``git worktree add --no-checkout`` leaves."""
    path = sb.worktree_root / f"P1-{ws_id}"
    sb.git(
        sb.repo, "worktree", "add", "-q", "--no-checkout", "-b", f"ws/P1/{ws_id}", str(path), start
    )
    return path


def _admin_dir(sb: GitSandbox, path: Path) -> Path:
    return Path(sb.git(path, "rev-parse", "--path-format=absolute", "--git-dir"))


def _lock_as_adding(sb: GitSandbox, path: Path) -> Path:
    """Lock the worktree's record as `git worktree add` does until it is done; its admin dir."""
    admin = _admin_dir(sb, path)
    (admin / "locked").write_text("initializing")
    assert "locked initializing" in sb.git(sb.repo, "worktree", "list", "--porcelain")
    return admin


def _assert_only_the_tools_change(sb: GitSandbox, rec: Recorder, ws_id: str, base: str) -> None:
    task = f"P1::{ws_id}"
    assert rec.states[task] is WsState.SUCCEEDED, rec.details(task)
    assert _added_on_origin(sb, f"ws/P1/{ws_id}", base) == f"A\t{ws_id.lower()}.txt"
    files = sb.git(sb.repo, "ls-tree", "-r", "--name-only", f"ws/P1/{ws_id}").split()
    assert set(BASE_FILES) <= set(files)


async def test_a_worktree_added_without_checkout_is_filled_before_the_tool(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    path = _add_without_checkout(sb, "A")
    assert sb.git(path, "ls-files") == ""  # as the crash left it: no files, no index

    rec = await _run(sb, tmp_path, _tool("A"))

    _assert_only_the_tools_change(sb, rec, "A", base)
    assert (_admin_dir(sb, path) / STAGE_FILE).read_text() == "ready\n"


async def test_a_folder_whose_registration_is_gone_is_made_again(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    path = _add_without_checkout(sb, "A")
    # A kill inside `git worktree add` before git recorded it: the folder holds only
    # a `.git` file pointing at a record that is not there.
    admin = _admin_dir(sb, path)
    for name in sorted(admin.rglob("*"), reverse=True):
        name.unlink() if name.is_file() else name.rmdir()
    admin.rmdir()
    assert [p.name for p in path.iterdir()] == [".git"]
    assert str(path) not in sb.git(sb.repo, "worktree", "list")

    rec = await _run(sb, tmp_path, _tool("A"))

    _assert_only_the_tools_change(sb, rec, "A", base)


async def test_an_add_killed_before_it_set_head_is_made_again(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    path = _add_without_checkout(sb, "A")
    # `git worktree add` locks the record as "initializing" and writes a null HEAD
    # before it sets the branch; a kill there leaves exactly this.
    _lock_as_adding(sb, path).joinpath("HEAD").write_text("0" * 40 + "\n")

    rec = await _run(sb, tmp_path, _tool("A"))

    _assert_only_the_tools_change(sb, rec, "A", base)
    assert "locked" not in sb.git(sb.repo, "worktree", "list", "--porcelain")


async def test_a_registration_killed_before_it_named_its_folder_is_made_again(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    # mission-control writes a new worktree's record itself, as git does: the branch,
    # then the record locked as "initializing"; a kill before its `gitdir` leaves a
    # record that git neither lists nor prunes, under the name the retry needs.
    sb.git(sb.repo, "branch", "ws/P1/A", "main")
    record = sb.repo / ".git" / "worktrees" / "P1-A"
    record.mkdir(parents=True)
    (record / "locked").write_text("initializing\n")

    rec = await _run(sb, tmp_path, _tool("A"))

    _assert_only_the_tools_change(sb, rec, "A", base)
    listed = sb.git(sb.repo, "worktree", "list", "--porcelain")
    assert f"worktree {sb.worktree_root / 'P1-A'}\n" in listed
    assert "locked" not in listed
    assert sorted(p.name for p in record.parent.iterdir()) == ["P1-A"]


async def test_an_add_killed_inside_its_checkout_is_checked_out_again(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    path = _add_without_checkout(sb, "A")
    # `git worktree add` of a small tree checks the files out before it unlocks the
    # record: a kill there leaves the branch set, the lock, and a half-written file.
    _lock_as_adding(sb, path)
    sb.write(path / "README.md", "# pro")

    rec = await _run(sb, tmp_path, _tool("A"))

    _assert_only_the_tools_change(sb, rec, "A", base)
    assert sb.git(sb.repo, "show", "ws/P1/A:README.md") == sb.git(sb.repo, "show", "main:README.md")


async def test_a_registered_worktree_whose_folder_was_deleted_is_made_again(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    path = _add_without_checkout(sb, "A")
    (path / ".git").unlink()
    path.rmdir()

    rec = await _run(sb, tmp_path, _tool("A"))

    _assert_only_the_tools_change(sb, rec, "A", base)


async def test_a_checkout_cut_short_with_a_stale_index_lock_is_finished(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    path = _add_without_checkout(sb, "A")
    # A `git reset --hard` killed half-way: some files written, its lock left behind.
    admin = _admin_dir(sb, path)
    (admin / STAGE_FILE).write_text("creating\n")
    sb.write(path / "README.md", "# project\n")
    (admin / "index.lock").write_bytes(b"")

    rec = await _run(sb, tmp_path, _tool("A"))

    _assert_only_the_tools_change(sb, rec, "A", base)
    assert not (admin / "index.lock").exists()


async def test_a_dependency_merge_cut_short_is_done_again(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    base = sb.git(sb.repo, "rev-parse", "main")
    # A finished earlier: its branch holds a.txt.
    a_path = _add_without_checkout(sb, "A")
    sb.git(a_path, "reset", "-q", "--hard")
    sb.write(a_path / "a.txt", "A\n")
    a_head = commit_work(a_path, base, "[P1::A] workstream A").head
    # B's worktree was checked out, then the kill came inside the merge of A.
    b_path = _add_without_checkout(sb, "B")
    sb.git(b_path, "reset", "-q", "--hard")
    sb.git(
        b_path,
        "merge",
        "-q",
        "--no-commit",
        "--no-ff",
        "-m",
        "Merge dependency ws/P1/A into ws/P1/B",
        "ws/P1/A",
    )
    assert (b_path / "a.txt").exists()
    assert sb.git(b_path, "rev-parse", "MERGE_HEAD") == a_head

    rec = await _run(sb, tmp_path, _tool("A"), _tool("B", ["A"], extra_check="test -f a.txt"))

    assert rec.states["P1::B"] is WsState.SUCCEEDED, rec.details("P1::B")
    # B's own commit adds b.txt alone, on top of A (the merge was a fast-forward).
    assert _added_on_origin(sb, "ws/P1/B", "ws/P1/B^") == "A\tb.txt"
    assert sb.git(sb.repo, "rev-parse", "ws/P1/B^") == a_head
    assert _added_on_origin(sb, "ws/P1/B", base).split("\n") == ["A\ta.txt", "A\tb.txt"]


async def test_a_tool_that_deletes_every_file_is_refused_and_nothing_is_pushed(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    tool = {
        "id": "A",
        "name": "empties the project",
        "tool": "shell",
        "command": ["git ls-files -z | xargs -0 rm -f"],
        "shell": True,
    }

    rec = await _run(sb, tmp_path, tool)

    assert rec.states["P1::A"] is WsState.FAILED
    [commit] = [
        e
        for e in rec.events
        if isinstance(e, ev.FinishStepDone) and e.task_id == "P1::A" and e.step == "commit"
    ]
    assert not commit.ok
    assert "refusing to commit: the work deletes every tracked file of its base (3 files" in (
        commit.detail
    )
    assert not any(isinstance(e, ev.FinishStepDone) and e.step == "push" for e in rec.events)
    assert sb.origin is not None
    assert "ws/P1/A" not in sb.git(sb.origin, "branch", "--list")
    assert sb.git(sb.repo, "rev-parse", "ws/P1/A") == sb.git(sb.repo, "rev-parse", "main")
