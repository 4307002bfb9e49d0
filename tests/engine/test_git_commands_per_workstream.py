"""How many git commands a workstream's worktree costs, and the facts read without git.

The fast path runs a handful of git commands per workstream where a shell loop
runs three; these pin the count, so a new step that asks git again shows up.
The facts read from files instead (a linked worktree's git dir, its common dir,
the remotes) must say what git says.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

import pytest

from mission_control.errors import GitError
from mission_control.git import prepare
from mission_control.git.conflicts import forecast
from mission_control.git.diffs import diff_changes, diffstat
from mission_control.git.ref_files import read_refs, write_ref
from mission_control.git.remotes import has_remote, remote_env
from mission_control.git.repo import (
    common_git_dir,
    git_path,
    head_from_files,
    is_linked_worktree,
    repo_lock,
    worktree_file,
)
from mission_control.git.touched_paths import diffing, remember_changes
from mission_control.git.worktrees import (
    CommitResult,
    PreparedWorktree,
    base_ref,
    commit_work,
    make_commit,
    prepare_worktree,
)
from tests.engine.engine_helpers import make_engine, write_plan, ws
from tests.helpers.git_trace import git_commands, traced

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import GitSandbox


def _a_committed(sb: GitSandbox) -> tuple[PreparedWorktree, CommitResult]:
    """Workstream A's worktree, with a.txt committed on it."""
    first = prepare_worktree(sb.ws("A"), [])
    sb.write(first.path / "a.txt", "a\n")
    return first, commit_work(first.path, first.base_commit, "A")


def test_a_workstream_costs_a_handful_of_git_commands(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    first, _ = _a_committed(sb)  # what is asked once per repository is asked now
    trace = traced(tmp_path, monkeypatch)

    prepared = prepare_worktree(sb.ws("B"), [])
    made = git_commands(trace)
    sb.write(prepared.path / "b.txt", "b\n")
    commit_work(prepared.path, prepared.base_commit, "B")
    committed = git_commands(trace)
    found = forecast(sb.repo, prepared.branch, [first.branch], "main")
    forecast_commands = git_commands(trace)

    # worktree add (with the checkout of a small tree): the refs are read from git's
    # files, and the base is recorded as a loose ref file. Was 12.
    assert len(made) <= 1, made
    # add and commit, which tell what changed (no diff): was 9 (git itself says when
    # nothing is staged).
    assert len(committed) <= 2, committed
    # None: the heads come from the refs' files, the branches' changed paths from their
    # commits' own diffs, which also say each sits on the base, and they share no path.
    assert forecast_commands == []
    assert found.conflicts == []
    assert found.base_head == sb.git(sb.repo, "rev-parse", "main")


def test_a_chain_link_starts_at_its_dependency_with_one_more_command(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    first, done = _a_committed(sb)
    trace = traced(tmp_path, monkeypatch)

    # The engine saw A's head made on the base: no merge-base question is left.
    prepared = prepare_worktree(sb.ws("B"), [first.branch], [(done.head, done.holds)])
    made = git_commands(trace)

    assert done.holds == first.base_commit
    assert prepared.base_commit == done.head == sb.git(prepared.path, "rev-parse", "HEAD")
    assert prepared.merged == (first.branch,)
    assert (prepared.path / "a.txt").read_text() == "a\n"
    assert len(made) <= 1, made  # worktree add; was 14
    sb.write(prepared.path / "b.txt", "b\n")
    commit_work(prepared.path, prepared.base_commit, "B")
    git_commands(trace)
    found = forecast(sb.repo, prepared.branch, [first.branch], "main")
    # B holds A and the base: nothing to diff, nothing to merge; one question (does B
    # hold A), as no ancestry is passed here.
    assert (found.conflicts, len(git_commands(trace))) == ([], 1)


def test_facts_read_from_files_say_what_git_says(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])

    for name in ("index", "MERGE_HEAD", "mission-control-stage", "rebase-merge"):
        assert worktree_file(prepared.path, name) == git_path(prepared.path, name)
    asked = sb.git(prepared.path, "rev-parse", "--path-format=absolute", "--git-common-dir")
    assert common_git_dir(prepared.path) == common_git_dir(sb.repo) == type(sb.repo)(asked)
    assert is_linked_worktree(prepared.path)
    assert not is_linked_worktree(sb.repo)
    sb.write(prepared.path / "a.txt", "a\n")
    done = commit_work(prepared.path, prepared.base_commit, "A")
    assert head_from_files(prepared.path) == done.head == sb.git(prepared.path, "rev-parse", "HEAD")
    sb.git(sb.repo, "pack-refs", "--all")  # no loose ref left: git is asked instead
    assert head_from_files(prepared.path) is None
    sb.git(prepared.path, "checkout", "-q", "--detach")
    assert head_from_files(prepared.path) == done.head
    assert head_from_files(sb.repo) is None  # the main checkout: git is asked


def test_a_forecast_waits_for_the_diff_the_commit_step_is_reading(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    first, _ = _a_committed(sb)
    second = prepare_worktree(sb.ws("B"), [])
    sb.write(second.path / "b.txt", "b\n")
    made = make_commit(second.path, second.base_commit, "B")  # its diff not read yet
    trace = traced(tmp_path, monkeypatch)
    inside = threading.Event()

    def commit_step_reads_its_diff() -> None:
        with diffing(second.path, second.base_commit, made.head):
            inside.set()
            time.sleep(0.3)  # the forecast comes meanwhile
            _, changes = diff_changes(second.path, second.base_commit, made.head)
            remember_changes(second.path, second.base_commit, made.head, changes)

    reader = threading.Thread(target=commit_step_reads_its_diff)
    reader.start()
    assert inside.wait(30)
    found = forecast(sb.repo, first.branch, [second.branch], "main")
    reader.join()

    assert found.conflicts == []
    # One diff in all, the commit step's: the forecast took its answer.
    assert [c.split()[0] for c in git_commands(trace)] == ["diff"]


def test_refs_read_and_written_as_files_say_what_git_says(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    first, done = _a_committed(sb)
    common = common_git_dir(sb.repo)
    main = sb.git(sb.repo, "rev-parse", "main")
    wanted = [f"refs/heads/{first.branch}", "refs/heads/main", "refs/heads/nothing"]
    loose = {f"refs/heads/{first.branch}": done.head, "refs/heads/main": main}
    assert read_refs(common, wanted) == loose
    sb.git(sb.repo, "pack-refs", "--all")  # now only in packed-refs
    assert not (common / "refs" / "heads" / "main").exists()
    assert read_refs(common, wanted) == loose
    sb.git(sb.repo, "update-ref", "refs/heads/main", done.head)  # loose, over the packed line
    assert read_refs(common, ["refs/heads/main"]) == {"refs/heads/main": done.head}

    ref = base_ref("ws/P/X")
    assert write_ref(common, ref, main)
    assert sb.git(sb.repo, "rev-parse", ref) == main
    assert read_refs(common, [ref]) == {ref: main}
    (common / f"{ref}.lock").write_text("")  # a git process holds the ref: git must do it
    assert not write_ref(common, ref, done.head)
    (common / f"{ref}.lock").unlink()
    assert not write_ref(common, "refs/heads/main", main)  # only our own refs are written

    assert read_refs(common, ["refs/bisect/bad"]) is None  # kept per worktree: git is asked
    sb.git(sb.repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    assert read_refs(common, ["refs/heads/alias"]) is None  # symbolic: git is asked
    (common / "reftable").mkdir()  # another ref store: git is asked
    assert read_refs(common, ["refs/heads/main"]) is None
    assert not write_ref(common, ref, main)


def test_a_remote_added_during_a_run_is_seen(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    assert not has_remote(sb.repo, "origin")
    bare = sb.tmp / "origin.git"
    sb.git(sb.tmp, "init", "-q", "--bare", str(bare))
    sb.git(sb.repo, "remote", "add", "origin", str(bare))
    assert has_remote(sb.repo, "origin")
    sb.git(sb.repo, "remote", "remove", "origin")
    assert not has_remote(sb.repo, "origin")


def test_remote_settings_are_read_again_only_when_a_remote_changes(
    git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = git_sandbox
    assert sb.origin is not None
    sb.git(sb.repo, "remote", "set-url", "origin", os.path.relpath(sb.origin, sb.repo))
    relative = remote_env(sb.repo, "origin")
    assert relative  # a relative URL is rewritten to the path the main checkout means
    assert has_remote(sb.repo, "origin")
    trace = traced(tmp_path, monkeypatch)
    sb.git(sb.repo, "config", "branch.ws/P/A.remote", "origin")  # as each push sets its upstream
    git_commands(trace)
    assert remote_env(sb.repo, "origin") == relative and has_remote(sb.repo, "origin")
    assert git_commands(trace) == []
    sb.git(sb.repo, "remote", "set-url", "origin", str(sb.origin))
    assert remote_env(sb.repo, "origin") == {}  # absolute now: nothing to rewrite


def test_one_diff_gives_the_diffstat_and_the_changed_paths(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.edit_line(prepared.path / "f.txt", 2, "changed")
    (prepared.path / "README.md").unlink()
    (prepared.path / "data.bin").write_bytes(b"\0\1\2")
    sb.write(prepared.path / "new" / "tab\tname.txt", "x\ny\n")
    done = commit_work(prepared.path, prepared.base_commit, "A")

    stat, changes = diff_changes(prepared.path, prepared.base_commit, done.head)

    assert stat == diffstat(prepared.path, prepared.base_commit, done.head)
    asked = sb.git(
        prepared.path,
        "diff",
        "--name-status",
        "--no-renames",
        "-z",
        prepared.base_commit,
        done.head,
    ).split("\0")
    assert changes == list(zip(asked[::2], asked[1::2], strict=False))


@pytest.mark.parametrize("split_index", [False, True])
def test_deleting_every_file_is_still_refused(
    local_git_sandbox: GitSandbox, split_index: bool
) -> None:
    sb = local_git_sandbox
    sb.git(sb.repo, "config", "core.splitIndex", "true" if split_index else "false")
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "kept.txt", "one file is enough\n")
    assert commit_work(prepared.path, prepared.base_commit, "A").changed
    for name in ("README.md", "f.txt", ".gitignore", "kept.txt"):
        (prepared.path / name).unlink()
    with pytest.raises(GitError, match="deletes every tracked file of its base"):
        commit_work(prepared.path, prepared.base_commit, "A")


def _refusing_hook(sb: GitSandbox) -> None:
    hook = sb.repo / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho 'lint says no' >&2\nexit 1\n")
    hook.chmod(0o755)


def test_a_hook_that_refuses_the_work_fails_the_commit(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    _refusing_hook(sb)
    sb.write(prepared.path / "a.txt", "a\n")
    with pytest.raises(GitError, match="committing the work failed: lint says no"):
        commit_work(prepared.path, prepared.base_commit, "A")
    done = commit_work(prepared.path, prepared.base_commit, "A", verify=False)
    assert done.committed and done.changed


def test_nothing_to_commit_is_no_changes_even_with_a_refusing_hook(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    _refusing_hook(sb)
    done = commit_work(prepared.path, prepared.base_commit, "A")
    assert (done.committed, done.changed, done.head) == (False, False, prepared.base_commit)


def test_a_new_worktree_is_registered_without_git_and_checked_out_by_it(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    theirs = sb.tmp / "theirs"
    sb.git(sb.repo, "worktree", "add", "-q", "-b", "theirs", str(theirs), "main")
    trace = traced(tmp_path, monkeypatch)

    prepared = prepare_worktree(sb.ws("A"), [])

    made = [c for c in git_commands(trace) if not c.startswith(("rev-parse", "remote"))]
    assert made == ["checkout --force --quiet"]  # no `worktree add`, no `git branch`
    listed = sb.git(sb.repo, "worktree", "list", "--porcelain")
    entry = f"worktree {prepared.path}\nHEAD {prepared.base_commit}\n"
    assert f"{entry}branch refs/heads/{prepared.branch}" in listed.split("\n\n")
    assert "locked" not in listed
    assert sb.git(prepared.path, "status", "--porcelain") == ""
    assert (prepared.path / "README.md").read_text() == (sb.repo / "README.md").read_text()
    # Git's own record of a worktree it added, file for file.
    records = common_git_dir(sb.repo) / "worktrees"
    for name in ("commondir", "HEAD"):
        ours, git_s = (records / prepared.path.name / name), (records / "theirs" / name)
        assert ours.read_text() == git_s.read_text().replace("theirs", prepared.branch)
    assert (records / prepared.path.name / "gitdir").read_text() == f"{prepared.path}/.git\n"
    sb.git(sb.repo, "worktree", "prune")
    sb.git(sb.repo, "fsck", "--no-progress")
    assert str(prepared.path) in sb.git(sb.repo, "worktree", "list")


def test_a_new_worktree_runs_the_post_checkout_hook_as_git_worktree_add_does(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    hook = sb.repo / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text('#!/bin/sh\necho "$3" > checked-out-by-hook\n')
    hook.chmod(0o755)

    prepared = prepare_worktree(sb.ws("A"), [])

    assert (prepared.path / "checked-out-by-hook").read_text() == "1\n"


def _worktree_config(sb: GitSandbox) -> None:
    """Per-worktree configuration: ``git worktree add`` writes more than a plain record."""
    sb.git(sb.repo, "config", "core.repositoryformatversion", "1")
    sb.git(sb.repo, "config", "extensions.worktreeConfig", "true")


def test_where_git_must_add_the_worktree_a_big_tree_is_checked_out_outside_the_lock(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    _worktree_config(sb)
    monkeypatch.setattr(prepare, "SMALL_TREE", 0)  # every tree counts as big
    trace = traced(tmp_path, monkeypatch)

    prepared = prepare_worktree(sb.ws("A"), [])

    made = git_commands(trace)
    assert any(c.startswith("worktree add --quiet --no-checkout") for c in made), made
    assert any(c.startswith("checkout --force") for c in made), made  # filled outside the lock
    assert sb.git(prepared.path, "status", "--porcelain") == ""
    assert (prepared.path / "README.md").read_text() == (sb.repo / "README.md").read_text()


def test_where_git_must_add_the_worktree_others_queued_get_it_checked_out_outside_the_lock(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    _worktree_config(sb)
    (tmp_path / "alone").mkdir()
    (tmp_path / "queued").mkdir()
    alone = traced(tmp_path / "alone", monkeypatch)
    prepare_worktree(sb.ws("A"), [])
    made = git_commands(alone)
    assert any(c.startswith("worktree add --quiet --no-track") for c in made), made
    assert not any(c.startswith("checkout --force") for c in made), made  # git's add did it

    monkeypatch.setattr(repo_lock(sb.repo), "queued", 1)  # another add of this process waits
    queued = traced(tmp_path / "queued", monkeypatch)
    prepared = prepare_worktree(sb.ws("B"), [])

    made = git_commands(queued)
    assert any(c.startswith("worktree add --quiet --no-checkout") for c in made), made
    assert any(c.startswith("checkout --force") for c in made), made  # filled outside the lock
    assert sb.git(prepared.path, "status", "--porcelain") == ""


def test_a_dependency_moved_since_its_commit_is_asked_about(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    first, done = _a_committed(sb)
    sb.write(sb.repo / "late.txt", "on main after A started\n")
    sb.git(sb.repo, "add", "late.txt")
    sb.git(sb.repo, "commit", "-q", "-m", "late")
    sb.git(first.path, "merge", "-q", "--no-edit", "main")  # A's branch moved on by hand
    trace = traced(tmp_path, monkeypatch)

    prepared = prepare_worktree(sb.ws("B"), [first.branch], [(done.head, done.holds)])

    asked = git_commands(trace)
    assert any(c.startswith("merge-base --is-ancestor") for c in asked)  # the old fact is stale
    assert (prepared.path / "late.txt").exists() and (prepared.path / "a.txt").exists()


async def test_a_chain_run_asks_git_no_ancestry_question(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                1,
                [
                    ws("A", "--write", "a.txt=A"),
                    ws("B", "--write", "b.txt=B", deps=["A"]),
                    ws("C", "--write", "c.txt=C", deps=["B"]),
                ],
            )
        ],
        pr={"enabled": False},
    )
    trace = traced(tmp_path, monkeypatch)

    assert await make_engine(plan, tmp_path / "state").run()

    # Each link starts from the one before, which the engine saw made on the base, and
    # its forecast knows it holds the links before it.
    asked = git_commands(trace)
    assert [c for c in asked if c.startswith("merge-base") or "--merged" in c] == [], asked
    assert (sb.worktree_root / "P1-C" / "a.txt").exists()


def test_a_hook_that_stages_files_of_its_own_makes_no_work_of_nothing(
    local_git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    hooks = tmp_path / "hooks"  # where core.hooksPath points, as a hook manager sets it
    hooks.mkdir()
    hook = hooks / "pre-commit"
    hook.write_text("#!/bin/sh\necho formatted > formatted.txt\ngit add formatted.txt\n")
    hook.chmod(0o755)
    sb.git(sb.repo, "config", "core.hooksPath", str(hooks))

    done = commit_work(prepared.path, prepared.base_commit, "A")

    assert (done.committed, done.changed) == (False, False)  # the tool changed nothing
    assert not (prepared.path / "formatted.txt").exists()  # the hook never ran for nothing
