"""The diff view shows new files too, whatever their names."""

from __future__ import annotations

from mission_control.git.diffs import diff_against, diff_between
from tests.conftest import GitRepo


def test_new_files_with_spaces_and_accents_are_in_the_diff(git_repo: GitRepo) -> None:
    base = git_repo.git("rev-parse", "HEAD")
    (git_repo.path / "a b.txt").write_text("spaced\n")
    (git_repo.path / "café.txt").write_text("accented\n")
    (git_repo.path / "README.md").write_text("changed\n")
    text = diff_against(git_repo.path, base)
    assert "spaced" in text
    assert "accented" in text
    assert "changed" in text


def test_a_branch_without_a_worktree_diffs_between_commits_and_long_ones_are_cut(
    git_repo: GitRepo,
) -> None:
    base = git_repo.git("rev-parse", "HEAD")
    head = git_repo.commit_file("big.txt", "x" * 5000 + "\n")
    text = diff_between(git_repo.path, base, head)
    assert "big.txt" in text and "x" * 100 in text
    cut = diff_between(git_repo.path, base, head, max_bytes=1000)
    assert cut.endswith("(diff cut: open a shell in the worktree for the rest)\n")
    assert len(cut) < 1200
    assert diff_between(git_repo.path, head, head) == "no changes against the base\n"
