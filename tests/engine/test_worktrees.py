"""Worktrees on real repositories: create, re-attach, dependencies, reset, clean."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mission_control.errors import GitError
from mission_control.git.errors import MergeConflictError, WorktreePathError
from mission_control.git.repo import is_dirty
from mission_control.git.worktrees import (
    STAGE_FILE,
    PreparedWorktree,
    base_ref,
    commit_work,
    list_worktrees,
    prepare_worktree,
    push_branch,
    remove_worktree,
    reset_worktree,
)
from mission_control.plan.model import Workstream

if TYPE_CHECKING:
    from conftest import GitSandbox


def _work(sb: GitSandbox, prepared: PreparedWorktree, name: str, text: str) -> str:
    """What a tool does: write a file; then finish it like the engine does."""
    sb.write(prepared.path / name, text)
    return commit_work(prepared.path, prepared.base_commit, f"work on {name}").head


def _advance_origin(sb: GitSandbox, name: str) -> str:
    """Someone else pushes a commit to origin's main."""
    other = sb.tmp / "other-clone"
    if not other.exists():
        sb.git(sb.tmp, "clone", "-q", str(sb.origin), str(other))
    sb.write(other / name, "from elsewhere\n")
    sb.git(other, "add", "-A")
    sb.git(other, "commit", "-q", "-m", f"add {name}")
    sb.git(other, "push", "-q", "origin", "main")
    return sb.git(other, "rev-parse", "HEAD")


def test_new_worktree_starts_from_the_remote_base(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    remote_head = _advance_origin(sb, "remote.txt")
    local_head = sb.git(sb.repo, "rev-parse", "main")
    ws = sb.ws("A")

    prepared = prepare_worktree(ws, [])

    assert prepared.path == sb.worktree_root / "PH1-A"
    assert prepared.branch == "ws/PH1/A"
    assert (prepared.created, prepared.reattached) == (True, False)
    assert prepared.start_point == "refs/remotes/origin/main"
    assert prepared.base_commit == remote_head != local_head
    assert sb.git(prepared.path, "rev-parse", "HEAD") == remote_head
    assert sb.git(prepared.path, "symbolic-ref", "--short", "HEAD") == "ws/PH1/A"
    assert (prepared.path / "remote.txt").read_text() == "from elsewhere\n"
    # The local base branch was not pulled or moved.
    assert sb.git(sb.repo, "rev-parse", "main") == local_head
    # The branch does not track the base: its upstream is set when it is pushed.
    assert sb.git(sb.repo, "config", "--get-regexp", "^branch\\.") == (
        "branch.main.remote origin\nbranch.main.merge refs/heads/main"
    )
    assert sb.git(sb.repo, "rev-parse", base_ref("ws/PH1/A")) == remote_head


def test_without_a_remote_starts_from_the_local_base(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    sb.write(sb.repo / "f.txt", "uncommitted\n")
    head = sb.git(sb.repo, "rev-parse", "main")

    prepared = prepare_worktree(sb.ws("A"), [])

    assert prepared.start_point == "refs/heads/main"
    assert prepared.base_commit == head
    assert (prepared.path / "f.txt").read_text().startswith("line 1\n")
    assert prepared.warnings == ()


def test_remote_without_the_base_branch_falls_back_to_local(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    sb.git(sb.repo, "branch", "develop")
    prepared = prepare_worktree(sb.ws("A", base_branch="develop"), [])
    assert prepared.start_point == "refs/heads/develop"
    assert any("has no branch develop" in w for w in prepared.warnings)


def test_missing_base_branch_is_a_clear_error(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    with pytest.raises(GitError, match=r"base branch nope does not exist .*`base_branch:`"):
        prepare_worktree(sb.ws("A", base_branch="nope"), [])
    assert len(list_worktrees(sb.repo)) == 1


def test_reattaches_to_its_own_worktree(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    ws = sb.ws("A")
    first = prepare_worktree(ws, [])
    sb.write(first.path / "half-done.txt", "tool output\n")
    _advance_origin(sb, "later.txt")  # a moved base does not move an existing branch

    again = prepare_worktree(ws, [])

    assert (again.created, again.reattached) == (False, True)
    assert again.path == first.path
    assert again.base_commit == first.base_commit
    assert (again.path / "half-done.txt").read_text() == "tool output\n"
    assert not (again.path / "later.txt").exists()
    assert len(list_worktrees(sb.repo)) == 2


def test_recreates_the_folder_when_only_the_branch_is_left(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    ws = sb.ws("A")
    first = prepare_worktree(ws, [])
    work_head = _work(sb, first, "done.txt", "done\n")
    shutil.rmtree(first.path)

    again = prepare_worktree(ws, [])

    assert (again.created, again.reattached) == (True, True)
    assert sb.git(again.path, "rev-parse", "HEAD") == work_head
    assert (again.path / "done.txt").read_text() == "done\n"
    # The recorded base survives, so the earlier work still counts as work.
    assert again.base_commit == first.base_commit != work_head
    assert not is_dirty(again.path)


def test_a_foreign_folder_is_refused_and_nothing_is_made(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    ws = sb.ws("A")
    sb.write(ws.worktree_path / "mine.txt", "the user's own file\n")

    with pytest.raises(WorktreePathError) as caught:
        prepare_worktree(ws, [])

    message = str(caught.value)
    assert str(ws.worktree_path) in message and "move it away" in message
    assert "\n" not in message
    assert sorted(p.name for p in ws.worktree_path.iterdir()) == ["mine.txt"]
    assert (ws.worktree_path / "mine.txt").read_text() == "the user's own file\n"
    assert sb.git(sb.repo, "branch", "--list", "ws/*") == ""
    assert sb.git(sb.repo, "for-each-ref", "refs/mission-control/") == ""
    assert len(list_worktrees(sb.repo)) == 1


def test_a_worktree_on_another_branch_at_the_path_is_refused(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    ws = sb.ws("A")
    sb.git(sb.repo, "worktree", "add", "-q", "-b", "elsewhere", str(ws.worktree_path))
    with pytest.raises(WorktreePathError, match="is on elsewhere, not ws/PH1/A"):
        prepare_worktree(ws, [])
    assert sb.git(sb.repo, "branch", "--list", "ws/*") == ""


def test_an_empty_folder_at_the_path_is_used(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    ws = sb.ws("A")
    ws.worktree_path.mkdir(parents=True)
    prepared = prepare_worktree(ws, [])
    assert (prepared.path / "README.md").exists()


def test_sixteen_workstreams_prepare_commit_and_push_at_once(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    workstreams = [sb.ws(f"W{i:02d}") for i in range(16)]
    barrier = threading.Barrier(len(workstreams))

    def run(ws: Workstream) -> tuple[PreparedWorktree, str]:
        barrier.wait()
        prepared = prepare_worktree(ws, [])
        head = _work(sb, prepared, f"{ws.id}.txt", ws.id)
        push_branch(prepared.path, "origin", prepared.branch)  # sets the upstream: config
        return prepared, head

    with ThreadPoolExecutor(max_workers=len(workstreams)) as pool:
        results = list(pool.map(run, workstreams))

    main = sb.origin_head()
    assert all(p.base_commit == main and p.created for p, _ in results)
    assert all((p.path / "README.md").read_text() == "# project\n" for p, _ in results)
    assert all(not is_dirty(p.path) for p, _ in results)
    listed = {e.branch for e in list_worktrees(sb.repo)}
    assert listed == {"refs/heads/main"} | {f"refs/heads/{ws.branch}" for ws in workstreams}
    for prepared, head in results:
        assert sb.origin_head(prepared.branch) == head
        assert sb.git(sb.repo, "config", f"branch.{prepared.branch}.remote") == "origin"


def test_a_dependent_sees_its_dependencies_work(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    a = prepare_worktree(sb.ws("A"), [])
    a_head = _work(sb, a, "a.txt", "from A\n")
    c = prepare_worktree(sb.ws("C"), [])
    c_head = _work(sb, c, "c.txt", "from C\n")

    b = prepare_worktree(sb.ws("B", depends_on=["PH1::A", "PH1::C"]), ["ws/PH1/A", "ws/PH1/C"])

    assert b.merged == ("ws/PH1/A", "ws/PH1/C")
    assert (b.path / "a.txt").read_text() == "from A\n"
    assert (b.path / "c.txt").read_text() == "from C\n"
    head = sb.git(b.path, "rev-parse", "HEAD")
    assert b.base_commit == head
    for dep_head in (a_head, c_head):
        sb.git(b.path, "merge-base", "--is-ancestor", dep_head, "HEAD")
    assert not is_dirty(b.path)

    # A retry merges nothing and keeps the same base.
    again = prepare_worktree(sb.ws("B"), ["ws/PH1/A", "ws/PH1/C"])
    assert again.merged == ()
    assert again.base_commit == b.base_commit
    assert sb.git(b.path, "rev-parse", "HEAD") == head


def test_conflicting_dependencies_fail_naming_the_file(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    a = prepare_worktree(sb.ws("A"), [])
    sb.edit_line(a.path / "f.txt", 0, "changed by A")
    commit_work(a.path, a.base_commit, "A")
    c = prepare_worktree(sb.ws("C"), [])
    sb.edit_line(c.path / "f.txt", 0, "changed by C")
    commit_work(c.path, c.base_commit, "C")
    start = sb.origin_head()

    for _ in range(2):  # the retry fails the same way
        with pytest.raises(MergeConflictError) as caught:
            prepare_worktree(sb.ws("B"), ["ws/PH1/A", "ws/PH1/C"])
        err = caught.value
        assert err.files == ["f.txt"]
        assert err.dependency == "ws/PH1/C"
        assert "f.txt" in str(err) and "ws/PH1/B" in str(err) and "base: branch" in str(err)

        b_path = sb.ws("B").worktree_path
        assert sb.git(b_path, "rev-parse", "HEAD") == start
        assert sb.git(b_path, "status", "--porcelain", "--untracked-files=all") == ""
        merge_head = sb.git(
            b_path, "rev-parse", "--path-format=absolute", "--git-path", "MERGE_HEAD"
        )
        assert not Path(merge_head).exists()
        assert (b_path / "f.txt").read_text().startswith("line 1\n")


def test_missing_dependency_branch_is_a_clear_error(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    with pytest.raises(GitError, match=r"dependency branch ws/PH1/Z does not exist"):
        prepare_worktree(sb.ws("B"), ["ws/PH1/Z"])


def test_reset_returns_to_the_base_and_removes_everything_new(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    ws = sb.ws("A")
    prepared = prepare_worktree(ws, [])
    _work(sb, prepared, "committed.txt", "by the tool\n")
    sb.edit_line(prepared.path / "f.txt", 2, "modified")
    sb.write(prepared.path / "new" / "untracked.txt", "new\n")
    sb.write(prepared.path / "debug.log", "ignored\n")
    sb.git(prepared.path, "checkout", "-q", "--detach")

    reset_worktree(prepared.path, prepared.base_commit, ws.branch)

    assert sb.git(prepared.path, "rev-parse", "HEAD") == prepared.base_commit
    assert sb.git(prepared.path, "symbolic-ref", "--short", "HEAD") == ws.branch
    assert sb.git(prepared.path, "status", "--porcelain", "--ignored") == ""
    assert not (prepared.path / "committed.txt").exists()
    assert not (prepared.path / "debug.log").exists()
    assert not (prepared.path / "new").exists()


def test_reset_refuses_the_main_checkout(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    sb.write(sb.repo / "f.txt", "precious\n")
    head = sb.git(sb.repo, "rev-parse", "HEAD")
    with pytest.raises(GitError, match="main checkout"):
        reset_worktree(sb.repo, head)
    assert (sb.repo / "f.txt").read_text() == "precious\n"


def test_the_users_checkout_stays_byte_identical(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    # A dirty checkout: a modified file, a staged change, a new file, an ignored one.
    sb.edit_line(sb.repo / "f.txt", 4, "user edit, not staged")
    sb.write(sb.repo / "staged.txt", "staged\n")
    sb.git(sb.repo, "add", "staged.txt")
    sb.write(sb.repo / "untracked.txt", "untracked\n")
    sb.write(sb.repo / "notes.log", "ignored\n")
    before = sb.snapshot()

    a = prepare_worktree(sb.ws("A"), [])
    _work(sb, a, "a.txt", "A\n")
    push_branch(a.path, "origin", a.branch)
    b = prepare_worktree(sb.ws("B"), [a.branch])
    sb.write(b.path / "b.txt", "B\n")
    reset_worktree(b.path, b.base_commit, b.branch)
    result = commit_work(b.path, b.base_commit, "B")
    assert not result.changed
    remove_worktree(sb.repo, b.path, b.branch, delete_branch=True, base_branch="main")

    assert sb.snapshot() == before


# ---------------------------------------------------------------- clean up


def test_clean_refuses_a_worktree_with_uncommitted_changes(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "unsaved.txt", "work\n")

    result = remove_worktree(sb.repo, prepared.path, prepared.branch, delete_branch=True)

    assert not result.ok and not result.worktree_removed and not result.branch_deleted
    assert any("uncommitted changes" in r and "--force" in r for r in result.refusals)
    assert (prepared.path / "unsaved.txt").exists()
    assert sb.git(sb.repo, "branch", "--list", prepared.branch) != ""

    forced = remove_worktree(
        sb.repo, prepared.path, prepared.branch, delete_branch=True, force=True
    )
    assert forced.ok and forced.worktree_removed and forced.branch_deleted
    assert not prepared.path.exists()


def test_clean_keeps_a_branch_neither_pushed_nor_merged(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    _work(sb, prepared, "a.txt", "A\n")

    result = remove_worktree(
        sb.repo, prepared.path, prepared.branch, delete_branch=True, base_branch="main"
    )

    assert result.worktree_removed and not result.branch_deleted
    assert result.refusals == (
        f"{sb.repo}: branch ws/PH1/A is not pushed to origin nor merged into main"
        " — push it, or pass --force to delete it anyway",
    )
    assert sb.git(sb.repo, "branch", "--list", prepared.branch) != ""
    assert sb.git(sb.repo, "for-each-ref", base_ref(prepared.branch)) != ""


def test_clean_removes_finished_worktrees_and_branches(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    pushed = prepare_worktree(sb.ws("A"), [])
    _work(sb, pushed, "a.txt", "A\n")
    push_branch(pushed.path, "origin", pushed.branch)
    untouched = prepare_worktree(sb.ws("B"), [])  # no work: merged into main trivially
    gone = prepare_worktree(sb.ws("C"), [])
    shutil.rmtree(gone.path)  # deleted by hand: only git's list remembers it

    results = [
        remove_worktree(sb.repo, p.path, p.branch, delete_branch=True, base_branch="main")
        for p in (pushed, untouched, gone)
    ]

    assert [(r.refusals, r.worktree_removed, r.branch_deleted) for r in results] == [
        ((), True, True)
    ] * 3
    assert [e.path for e in list_worktrees(sb.repo)] == [sb.repo]
    assert sb.git(sb.repo, "branch", "--list", "ws/*") == ""
    assert sb.git(sb.repo, "for-each-ref", "refs/mission-control/") == ""
    assert not pushed.path.exists() and not untouched.path.exists()
    # The remote's copy is kept: cleaning is local.
    assert sb.origin_head("ws/PH1/A")


def test_clean_without_branches_keeps_them(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    result = remove_worktree(sb.repo, prepared.path, prepared.branch)
    assert result.ok and result.worktree_removed and not result.branch_deleted
    assert sb.git(sb.repo, "branch", "--list", prepared.branch) != ""
    # ...and the branch can be re-attached later.
    again = prepare_worktree(sb.ws("A"), [])
    assert (again.created, again.reattached) == (True, True)
    assert again.base_commit == prepared.base_commit


def test_clean_leaves_a_foreign_folder_alone(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    folder = sb.worktree_root / "PH1-A"
    sb.write(folder / "mine.txt", "keep\n")
    result = remove_worktree(sb.repo, folder, "ws/PH1/A", delete_branch=True)
    assert not result.ok and "not a worktree" in result.refusals[0]
    assert (folder / "mine.txt").read_text() == "keep\n"
    main = remove_worktree(sb.repo, sb.repo, "main")
    assert not main.ok and "main checkout" in main.refusals[0]
    assert (sb.repo / "README.md").exists()


def test_paths_are_compared_resolved(local_git_sandbox: GitSandbox, tmp_path: Path) -> None:
    sb = local_git_sandbox
    link = tmp_path / "link-root"
    sb.worktree_root.mkdir()
    link.symlink_to(sb.worktree_root)
    first = prepare_worktree(sb.ws("A"), [])
    again = prepare_worktree(sb.ws("A", worktree_root=link), [])
    assert again.reattached and not again.created
    assert again.base_commit == first.base_commit


def test_an_unreachable_remote_falls_back_to_the_last_fetched_copy(
    git_sandbox: GitSandbox,
) -> None:
    sb = git_sandbox
    sb.git(sb.repo, "fetch", "-q", "origin")
    fetched = sb.git(sb.repo, "rev-parse", "refs/remotes/origin/main")
    sb.git(sb.repo, "remote", "set-url", "origin", str(sb.tmp / "moved-away.git"))

    prepared = prepare_worktree(sb.ws("A"), [])

    assert prepared.base_commit == fetched
    assert prepared.start_point == "refs/remotes/origin/main"
    assert len(prepared.warnings) == 1
    assert "fetching main from origin failed" in prepared.warnings[0]
    assert "last fetched copy" in prepared.warnings[0]


def test_an_unreachable_remote_never_fetched_is_an_error(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    sb.git(sb.repo, "remote", "add", "upstream", str(sb.tmp / "nowhere.git"))
    with pytest.raises(GitError, match=r"fetching main from upstream failed: .* — check the"):
        prepare_worktree(sb.ws("A", remote="upstream"), [])
    assert sb.git(sb.repo, "branch", "--list", "ws/*") == ""


def test_a_missing_repository_is_a_clear_error(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    with pytest.raises(GitError, match="repository folder does not exist — fix `repo:`"):
        prepare_worktree(sb.ws("A", repo=sb.tmp / "nope"), [])
    (sb.tmp / "plain").mkdir()
    with pytest.raises(GitError, match="not a git repository"):
        prepare_worktree(sb.ws("A", repo=sb.tmp / "plain"), [])


def test_a_failed_add_leaves_no_branch_behind(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    blocker = sb.tmp / "not-a-folder"
    blocker.write_text("a file where the worktree root should be\n")
    with pytest.raises(GitError, match="adding the worktree of ws/PH1/A failed"):
        prepare_worktree(sb.ws("A", worktree_root=blocker), [])
    assert sb.git(sb.repo, "branch", "--list", "ws/*") == ""
    assert len(list_worktrees(sb.repo)) == 1
    assert blocker.read_text() == "a file where the worktree root should be\n"


# ---------------------------------------------------------------- cut short by a crash


def _stage_file(sb: GitSandbox, path: Path) -> Path:
    return Path(sb.git(path, "rev-parse", "--path-format=absolute", "--git-path", STAGE_FILE))


def test_dependency_merges_cut_short_on_a_retry_are_finished_with_the_same_base(
    git_sandbox: GitSandbox,
) -> None:
    sb = git_sandbox
    b = prepare_worktree(sb.ws("B"), [])  # an earlier run: B made before its dependencies
    a = prepare_worktree(sb.ws("A"), [])
    _work(sb, a, "a.txt", "from A\n")
    c = prepare_worktree(sb.ws("C"), [])
    _work(sb, c, "c.txt", "from C\n")
    deps = ["ws/PH1/A", "ws/PH1/C"]
    # This run's preparation of B merged A, then was killed inside the merge of C.
    _stage_file(sb, b.path).write_text(f"merging {b.base_commit}\n")
    sb.git(
        b.path, "merge", "-q", "--no-ff", "-m", "Merge dependency ws/PH1/A into ws/PH1/B", deps[0]
    )
    sb.git(
        b.path,
        "merge",
        "-q",
        "--no-commit",
        "--no-ff",
        "-m",
        "Merge dependency ws/PH1/C into ws/PH1/B",
        deps[1],
    )

    again = prepare_worktree(sb.ws("B"), deps)

    assert again.merged == ("ws/PH1/C",)
    # As if never cut short: the merges are the base, not the workstream's work.
    assert again.base_commit == sb.git(b.path, "rev-parse", "HEAD")
    assert (b.path / "a.txt").exists() and (b.path / "c.txt").exists()
    assert not is_dirty(b.path)
    assert _stage_file(sb, b.path).read_text() == "ready\n"


def test_a_worktree_without_a_stage_keeps_the_tools_uncommitted_work(
    git_sandbox: GitSandbox,
) -> None:
    """A worktree made before stages were recorded is never reset: its files may be work."""
    sb = git_sandbox
    first = prepare_worktree(sb.ws("A"), [])
    _stage_file(sb, first.path).unlink()
    sb.edit_line(first.path / "f.txt", 0, "the tool's edit")
    (first.path / "README.md").unlink()  # the tool deleted it
    sb.write(first.path / "new.txt", "the tool's file\n")

    again = prepare_worktree(sb.ws("A"), [])

    assert (again.path / "f.txt").read_text().startswith("the tool's edit\n")
    assert not (again.path / "README.md").exists()
    assert (again.path / "new.txt").read_text() == "the tool's file\n"
    # Even with its index gone, only missing files come back; none is overwritten.
    _stage_file(sb, first.path).unlink()
    Path(sb.git(first.path, "rev-parse", "--path-format=absolute", "--git-path", "index")).unlink()
    prepare_worktree(sb.ws("A"), [])
    assert (again.path / "f.txt").read_text().startswith("the tool's edit\n")
    assert (again.path / "new.txt").read_text() == "the tool's file\n"


def test_a_commit_that_empties_the_project_is_refused(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    for name in ("README.md", "f.txt", ".gitignore"):
        (prepared.path / name).unlink()
    with pytest.raises(GitError, match=r"deletes every tracked file of its base \(3 files"):
        commit_work(prepared.path, prepared.base_commit, "empty it")
    assert sb.git(prepared.path, "rev-parse", "HEAD") == prepared.base_commit
    # Deleting some files is work like any other.
    sb.git(prepared.path, "checkout", "HEAD", "--", "README.md")
    assert commit_work(prepared.path, prepared.base_commit, "trim").changed
